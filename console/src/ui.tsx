/** Small pieces every page uses. */
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

/** The page heading: focused (not tabbable) whenever the page changes. */
export function PageHeading(props: { children: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), [props.children]);
  return (
    <h2 ref={ref} tabIndex={-1} class="page-heading">
      {props.children}
    </h2>
  );
}

export function ErrorNote(props: { error: unknown }) {
  if (!props.error) return null;
  const message = props.error instanceof Error ? props.error.message : String(props.error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/** A time as the reader's local time, with the exact instant for machines (and on hover). */
export function When(props: { at: string | null | undefined; fallback?: string }) {
  if (!props.at) return <>{props.fallback ?? "—"}</>;
  const date = new Date(props.at);
  return (
    <time dateTime={props.at} title={props.at}>
      {date.toLocaleString()}
    </time>
  );
}

export function StatusBadge(props: { status: string }) {
  return <span class={`badge badge-${props.status}`}>{props.status}</span>;
}

export function Field(props: { label: string; children: ComponentChildren; testId?: string }) {
  return (
    <>
      <dt>{props.label}</dt>
      <dd data-testid={props.testId}>{props.children}</dd>
    </>
  );
}

export const ms = (value: number | null | undefined) => (value === null || value === undefined ? "—" : `${Math.round(value)} ms`);

/**
 * A table as every page shows one: in a focusable, labelled region that scrolls on its own on a
 * narrow screen, with its column headings (scope col) and an optional caption for screen readers.
 */
export function DataTable(props: { label: string; testId: string; caption?: string; columns: string[]; children: ComponentChildren }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={props.label}>
      <table data-testid={props.testId}>
        {props.caption && <caption class="visually-hidden">{props.caption}</caption>}
        <thead>
          <tr>
            {props.columns.map((column) => (
              <th scope="col" key={column}>
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

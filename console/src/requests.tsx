/**
 * My requests: `GET /api/v1/requests` one page at a time (newest first, a status filter, the API's
 * opaque cursor for the next page and a stack of the cursors seen for the previous ones), and the
 * detail of one request (`GET /api/v1/status/{id}`), read again each second until it is final,
 * with a Cancel button while it is not.
 */
import { useEffect, useState } from "preact/hooks";
import { announceSettled, FINAL_STATUSES, getJson, postJson, type RequestItem, type RequestPage, type Status } from "./api.js";
import { ErrorNote, Field, ms, PageHeading, StatusBadge, When, DataTable } from "./ui.js";

const STATUS_FILTERS: Array<Status | ""> = ["", "queued", "processing", "completed", "failed", "cancelled"];
const PAGE_SIZES = [10, 20, 50, 100];

const isFinal = (status: string) => (FINAL_STATUSES as string[]).includes(status);

export function Requests() {
  const [status, setStatus] = useState<Status | "">("");
  const [limit, setLimit] = useState(20);
  // cursors[i] is the cursor of page i (undefined: the first page).
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const [page, setPage] = useState<RequestPage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [reloads, setReloads] = useState(0);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    const controller = new AbortController();
    const query = new URLSearchParams({ limit: String(limit) });
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    setLoading(true);
    getJson<RequestPage>(`/api/v1/requests?${query}`, controller.signal)
      .then((answer) => {
        setPage(answer);
        setError(null);
      })
      .catch((failure) => controller.signal.aborted || setError(failure))
      .finally(() => controller.signal.aborted || setLoading(false));
    return () => controller.abort();
  }, [status, limit, cursor, reloads]);

  const restart = () => setCursors([undefined]);

  return (
    <>
      <PageHeading>My requests</PageHeading>
      <form class="filters card" onSubmit={(e) => e.preventDefault()} aria-label="Filter requests">
        <div class="field">
          <label for="status-filter">Status</label>
          <select
            id="status-filter"
            value={status}
            onChange={(e) => {
              setStatus(e.currentTarget.value as Status | "");
              restart();
            }}
          >
            {STATUS_FILTERS.map((s) => (
              <option key={s} value={s}>
                {s || "All"}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="page-size">Per page</label>
          <select
            id="page-size"
            value={String(limit)}
            onChange={(e) => {
              setLimit(Number(e.currentTarget.value));
              restart();
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <button type="button" onClick={() => setReloads((n) => n + 1)}>
          Refresh
        </button>
      </form>
      <ErrorNote error={error} />
      <p role="status" class="hint">
        {loading ? "Loading…" : page ? `Page ${cursors.length}: ${page.data.length} request${page.data.length === 1 ? "" : "s"}` : ""}
      </p>
      {page && page.data.length === 0 && !loading && <p>No requests{status ? ` with status ${status}` : ""} yet.</p>}
      {page && page.data.length > 0 && (
        <DataTable label="Requests" testId="requests-table" caption="Your requests, newest first" columns={["Created", "Status", "Model", "Tokens", "Request"]}>
          {page.data.map((item) => (
            <tr key={item.request_id} data-request-id={item.request_id} data-status={item.status}>
              <td data-label="Created">
                <When at={item.created_at} />
              </td>
              <td data-label="Status">
                <StatusBadge status={item.status} />
              </td>
              <td data-label="Model">{item.model.split("/").pop()}</td>
              <td data-label="Tokens">{item.usage ? item.usage.total_tokens : `~${item.estimated_tokens}`}</td>
              <td data-label="Request">
                <a href={`#/requests/${item.request_id}`} aria-label={`Details of request ${item.request_id}`}>
                  <code>{item.request_id.slice(0, 8)}</code>
                </a>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={!page?.next_cursor} onClick={() => page?.next_cursor && setCursors((c) => [...c, page.next_cursor as string])}>
          Older
        </button>
      </nav>
    </>
  );
}

export function RequestDetail(props: { id: string }) {
  const [item, setItem] = useState<RequestItem | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [cancelling, setCancelling] = useState(false);
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wasOpen = false;
    const load = () =>
      getJson<RequestItem>(`/api/v1/status/${props.id}`, controller.signal)
        .then((answer) => {
          setItem(answer);
          setError(null);
          if (!isFinal(answer.status)) {
            wasOpen = true;
            timer = setTimeout(load, 1000);
          } else if (wasOpen) announceSettled();
        })
        .catch((failure) => controller.signal.aborted || setError(failure));
    void load();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [props.id, reloads]);

  const cancel = async () => {
    setCancelling(true);
    try {
      setItem({ ...(item as RequestItem), ...(await postJson<Partial<RequestItem>>(`/api/v1/inference/${props.id}/cancel`, {})) });
      announceSettled();
      setReloads((n) => n + 1);
    } catch (failure) {
      setError(failure);
    } finally {
      setCancelling(false);
    }
  };

  const took = item?.completed_at && item.started_at ? Date.parse(item.completed_at) - Date.parse(item.started_at) : null;
  return (
    <>
      <PageHeading>Request details</PageHeading>
      <p>
        <a href="#/requests">← Back to my requests</a>
      </p>
      <ErrorNote error={error} />
      {item && (
        <section class="card" aria-label={`Request ${item.request_id}`}>
          <dl class="facts">
            <Field label="Request id">
              <code>{item.request_id}</code>
            </Field>
            <Field label="Status" testId="detail-status">
              <StatusBadge status={item.status} />
            </Field>
            <Field label="Model">{item.model}</Field>
            <Field label="Created">
              <When at={item.created_at} />
            </Field>
            <Field label="Started">
              <When at={item.started_at} />
            </Field>
            <Field label="Finished">
              <When at={item.completed_at} />
            </Field>
            <Field label="Run time">{ms(took)}</Field>
            <Field label="Tokens" testId="detail-usage">
              {item.usage ? `${item.usage.prompt_tokens} prompt + ${item.usage.completion_tokens} completion = ${item.usage.total_tokens}` : `~${item.estimated_tokens} reserved`}
            </Field>
            {item.error && (
              <Field label="Error">
                {item.error.message} (<code>{item.error.code}</code>)
              </Field>
            )}
          </dl>
          {!isFinal(item.status) && (
            <p>
              <button type="button" class="danger" onClick={cancel} disabled={cancelling}>
                {cancelling ? "Cancelling…" : "Cancel request"}
              </button>
            </p>
          )}
          {item.result?.output_text != null && (
            <>
              <h3>Output</h3>
              <pre data-testid="detail-output" tabIndex={0}>
                {item.result.output_text}
              </pre>
            </>
          )}
        </section>
      )}
    </>
  );
}

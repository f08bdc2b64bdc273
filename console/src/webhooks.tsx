/**
 * Webhooks: my endpoints (`GET /api/v1/webhooks`) with each one's URL, events, whether it is enabled
 * (and, once the platform gave up on it, why) and how its deliveries go (last delivered, waiting,
 * last error), read again every few seconds; a form to register one (`POST /api/v1/webhooks`) that
 * offers the event types the API itself lists; the signing secret shown once, with a copy button;
 * delete (`DELETE /api/v1/webhooks/{id}`) after a confirmation inside the row.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { usePolled } from "./polling.js";
import { ApiError, deleteJson, postJson, type WebhookCreated, type WebhookEndpoint, type WebhookList } from "./api.js";
import { ErrorNote, PageHeading, StatusBadge, When, DataTable } from "./ui.js";

/** How often the list is read again: deliveries happen while the page is open. */
const POLL_MS = 3000;

/** What each family of event types is about (README "Webhooks"); another family shows its name. */
const FAMILIES: Record<string, string> = {
  response: "Background responses (/v1/responses with background: true)",
  batch: "Batches",
  inference: "Native requests (POST /api/v1/inference)",
};

function byFamily(types: string[]): Array<[string, string[]]> {
  const groups = new Map<string, string[]>();
  for (const type of types) {
    const family = type.split(".")[0] ?? type;
    groups.set(family, [...(groups.get(family) ?? []), type]);
  }
  return [...groups];
}

const slug = (text: string) => text.replace(/[^\w-]/g, "-");
const eventsText = (events: string[] | "all") => (events === "all" ? "All events" : events.join(", "));

function SecretOnce(props: { created: WebhookCreated; onDone: () => void }) {
  const box = useRef<HTMLDivElement>(null);
  const field = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no");
  // The secret appears once: take the focus there, so a screen reader reads the warning out.
  useEffect(() => {
    setCopied("no");
    box.current?.focus();
  }, [props.created.id]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.created.secret);
      setCopied("yes");
    } catch {
      // No clipboard (a plain-http origin, a refused permission): selected, for the keyboard's copy.
      field.current?.focus();
      field.current?.select();
      setCopied("failed");
    }
  };
  return (
    <div class="card key-once" ref={box} tabIndex={-1} role="group" aria-labelledby="secret-heading" aria-describedby="secret-warning" data-testid="webhook-secret">
      <h4 id="secret-heading">Signing secret of {props.created.url}</h4>
      <p id="secret-warning">
        <strong>You will not see this secret again.</strong> Copy it now and keep it where your receiver reads it: it checks the{" "}
        <code>webhook-signature</code> header of every delivery. Lost it? Delete the endpoint and register it again.
      </p>
      <label for="webhook-secret-value">Signing secret</label>
      <div class="secret-row">
        <input id="webhook-secret-value" ref={field} readOnly value={props.created.secret} spellcheck={false} autocomplete="off" onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={copy}>
          Copy
        </button>
      </div>
      <p role="status" class="hint">
        {copied === "yes" ? "Copied to the clipboard." : copied === "failed" ? "The browser did not let the page copy: the secret is selected, press Ctrl+C (⌘C on a Mac)." : ""}
      </p>
      <button type="button" class="secondary" onClick={props.onDone}>
        I have saved it
      </button>
    </div>
  );
}

function NewEndpoint(props: { eventTypes: string[] | null; onCreated: (created: WebhookCreated) => void }) {
  const [url, setUrl] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const urlRefused = error instanceof ApiError && ["invalid_webhook_url", "webhook_address_refused"].includes(error.code ?? "");

  const submit = async (event: Event) => {
    event.preventDefault();
    if (url.trim() === "") return setError(new Error("Enter the URL the events are sent to, such as https://example.com/hooks."));
    setBusy(true);
    setError(null);
    try {
      // In the API's order; none chosen leaves `events` out, which is every type.
      const events = (props.eventTypes ?? []).filter((type) => chosen.includes(type));
      const created = await postJson<WebhookCreated>("/api/v1/webhooks", { url: url.trim(), ...(events.length > 0 ? { events } : {}) });
      setUrl("");
      setChosen([]);
      props.onCreated(created);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const toggle = (type: string, on: boolean) => setChosen((now) => (on ? [...now, type] : now.filter((t) => t !== type)));

  return (
    // The API checks the URL and says why in words; the browser's own bubble would say less.
    <form class="card" onSubmit={submit} noValidate aria-labelledby="new-webhook-heading">
      <h3 id="new-webhook-heading">Register an endpoint</h3>
      <div class="field">
        <label for="webhook-url">Endpoint URL</label>
        <input
          id="webhook-url"
          type="url"
          inputMode="url"
          autocomplete="off"
          spellcheck={false}
          value={url}
          onInput={(e) => setUrl(e.currentTarget.value)}
          aria-describedby="webhook-url-hint"
          aria-invalid={urlRefused ? "true" : undefined}
          maxLength={2048}
        />
        <p id="webhook-url-hint" class="hint">
          An absolute http(s) URL on a public address; the platform POSTs each event there, signed.
        </p>
      </div>
      <fieldset class="events" aria-describedby="webhook-events-hint">
        <legend>Events</legend>
        <p id="webhook-events-hint" class="hint">
          None chosen: every event type, those added later too.
        </p>
        {props.eventTypes === null ? (
          <p class="hint">Loading the event types…</p>
        ) : (
          <div class="event-groups">
            {byFamily(props.eventTypes).map(([family, types]) => (
              <div key={family} class="event-group" role="group" aria-labelledby={`family-${slug(family)}`}>
                <p id={`family-${slug(family)}`} class="event-family">
                  {FAMILIES[family] ?? family}
                </p>
                {types.map((type) => (
                  <div class="check" key={type}>
                    <input type="checkbox" id={`event-${slug(type)}`} checked={chosen.includes(type)} onChange={(e) => toggle(type, e.currentTarget.checked)} />
                    <label for={`event-${slug(type)}`}>{type}</label>
                  </div>
                ))}
              </div>
            ))}
          </div>
        )}
      </fieldset>
      <button type="submit" disabled={busy}>
        {busy ? "Registering…" : "Register endpoint"}
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

function EndpointRow(props: { endpoint: WebhookEndpoint; onDeleted: (endpoint: WebhookEndpoint) => void }) {
  const e = props.endpoint;
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ask = useRef<HTMLButtonElement>(null);
  const yes = useRef<HTMLButtonElement>(null);
  const asked = useRef(false);
  // The keyboard follows the question: onto "Yes, delete", and back onto "Delete" when kept.
  useEffect(() => {
    if (confirming) yes.current?.focus();
    else if (asked.current) ask.current?.focus();
    asked.current = confirming;
  }, [confirming]);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await deleteJson(`/api/v1/webhooks/${encodeURIComponent(e.id)}`);
      props.onDeleted(e);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <tr data-endpoint-id={e.id} data-status={e.status}>
      <td data-label="Endpoint">
        <div class="cell">
          <span>{e.url}</span>
          <div class="hint">
            <code>{e.id}</code>
          </div>
        </div>
      </td>
      <td data-label="Events">
        <div class="cell">{eventsText(e.events)}</div>
      </td>
      <td data-label="Status">
        <div class="cell">
          <StatusBadge status={e.status} />
          {e.status === "disabled" && (
            <p class="error" data-testid="disabled-reason">
              Disabled <When at={e.disabled_at} />: {e.disabled_reason ?? "no reason was recorded"}. Delete it and register it again to resume.
            </p>
          )}
        </div>
      </td>
      <td data-label="Deliveries">
        <div class="cell" data-testid="deliveries">
          <div>
            Last delivered: <When at={e.last_delivered_at} fallback="never" />
          </div>
          <div>Waiting: {e.pending_deliveries}</div>
          {e.last_error && (
            <div class="warn">
              Last error (<When at={e.last_error_at} />): {e.last_error}
            </div>
          )}
        </div>
      </td>
      <td data-label="Created">
        <div class="cell">
          <When at={e.created_at} />
        </div>
      </td>
      <td data-label="Actions">
        <div class="cell">
          {confirming ? (
            <div class="actions" role="group" aria-label={`Delete ${e.url}?`}>
              <span>Delete it, and the events not yet delivered to it?</span>
              <button type="button" class="danger" ref={yes} disabled={busy} onClick={remove}>
                {busy ? "Deleting…" : "Yes, delete"}
              </button>
              <button type="button" class="secondary" disabled={busy} onClick={() => setConfirming(false)}>
                Keep it
              </button>
            </div>
          ) : (
            <button type="button" class="danger" ref={ask} onClick={() => setConfirming(true)} aria-label={`Delete the endpoint ${e.url}`}>
              Delete
            </button>
          )}
          <ErrorNote error={error} />
        </div>
      </td>
    </tr>
  );
}

export function WebhooksPage() {
  // Deliveries happen while the page is open: the list is read every POLL_MS, failed reads too.
  const { data: list, error, reload } = usePolled<WebhookList>("/api/v1/webhooks", { nextMs: () => POLL_MS, retryMs: POLL_MS });
  const [created, setCreated] = useState<WebhookCreated | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const listHeading = useRef<HTMLHeadingElement>(null);

  const onCreated = (answer: WebhookCreated) => {
    setNotice(null);
    setCreated(answer);
    reload();
  };
  const onDeleted = (endpoint: WebhookEndpoint) => {
    setNotice(`Deleted the endpoint ${endpoint.url}.`);
    if (created?.id === endpoint.id) setCreated(null);
    // Its row (and the focused button in it) goes away: the focus moves to the list's heading.
    listHeading.current?.focus();
    reload();
  };

  return (
    <>
      <PageHeading>Webhooks</PageHeading>
      <p>The platform POSTs a signed event to your endpoints when one of your requests or batches ends; a receiver that fails is tried again with back-off (for a day by default), then disabled.</p>
      <NewEndpoint eventTypes={list?.event_types ?? null} onCreated={onCreated} />
      {created && <SecretOnce created={created} onDone={() => setCreated(null)} />}
      <h3 ref={listHeading} tabIndex={-1} class="page-heading">
        My endpoints
      </h3>
      {notice && <p role="status">{notice}</p>}
      <ErrorNote error={error} />
      {!list && !error && <p role="status">Loading…</p>}
      {list && list.data.length === 0 && <p>No endpoints yet.</p>}
      {list && list.data.length > 0 && (
        <DataTable label="Webhook endpoints" testId="webhooks-table" caption={`Your webhook endpoints; the list updates every ${POLL_MS / 1000} seconds`} columns={["Endpoint", "Events", "Status", "Deliveries", "Created", "Actions"]}>
          {list.data.map((endpoint) => (
            <EndpointRow key={endpoint.id} endpoint={endpoint} onDeleted={onDeleted} />
          ))}
        </DataTable>
      )}
    </>
  );
}

/**
 * Batches: upload a JSONL file (`POST /v1/files`, purpose=batch) and create a batch of it for an
 * endpoint (`POST /v1/batches`); the list of my batches (`GET /v1/batches`) with each one's status
 * and request counts as a progress bar, read again every two seconds while one is not final; the
 * output and error files downloaded (`GET /v1/files/{id}/content`); a running batch cancelled.
 */
import { useRef, useState } from "preact/hooks";
import { usePolled } from "./polling.js";
import { FINAL_BATCH_STATUSES, getBlob, postForm, postJson, type Batch, type ListPage } from "./api.js";
import { ErrorNote, PageHeading, StatusBadge, When, DataTable } from "./ui.js";

const ENDPOINTS = ["/v1/chat/completions", "/v1/completions", "/v1/responses"];
/** How often the list is read again while a batch is running. */
const POLL_MS = 2000;

const isFinal = (b: Batch) => (FINAL_BATCH_STATUSES as string[]).includes(b.status);
const iso = (seconds: number | undefined) => (seconds === undefined ? null : new Date(seconds * 1000).toISOString());

/** Saves a file of the batch under a name that says which batch and which file it is. */
async function download(fileId: string, name: string): Promise<void> {
  const blob = await getBlob(`/v1/files/${encodeURIComponent(fileId)}/content`);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy once it started; the URL would otherwise hold the blob.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function CreateBatch(props: { onCreated: (batch: Batch) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [endpoint, setEndpoint] = useState(ENDPOINTS[0] as string);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<Batch | null>(null);
  const input = useRef<HTMLInputElement>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!file) return setError(new Error("Choose a JSONL file first: one request a line, {custom_id, method, url, body}."));
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      const form = new FormData();
      form.set("purpose", "batch");
      form.set("file", file, file.name);
      const uploaded = await postForm<{ id: string }>("/v1/files", form);
      const batch = await postJson<Batch>("/v1/batches", { input_file_id: uploaded.id, endpoint, completion_window: "24h" });
      setCreated(batch);
      setFile(null);
      if (input.current) input.current.value = "";
      props.onCreated(batch);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card" onSubmit={submit} aria-labelledby="new-batch-heading">
      <h3 id="new-batch-heading">New batch</h3>
      <div class="row">
        <div class="field">
          <label for="batch-file">JSONL file</label>
          <input
            id="batch-file"
            ref={input}
            type="file"
            accept=".jsonl,.json,.txt,application/jsonl,application/x-ndjson,text/plain"
            aria-describedby="batch-file-hint"
            onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
          />
          <p id="batch-file-hint" class="hint">
            One request a line: <code>{'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {…}}'}</code>
          </p>
        </div>
        <div class="field">
          <label for="batch-endpoint">Endpoint</label>
          <select id="batch-endpoint" value={endpoint} onChange={(e) => setEndpoint(e.currentTarget.value)}>
            {ENDPOINTS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </div>
      </div>
      <button type="submit" disabled={busy}>
        {busy ? "Uploading…" : "Upload and create batch"}
      </button>
      <ErrorNote error={error} />
      {created && (
        <p role="status">
          Created batch <code>{created.id}</code> ({created.status}).
        </p>
      )}
    </form>
  );
}

function Progress(props: { batch: Batch }) {
  const c = props.batch.request_counts;
  const done = c.completed + c.failed;
  const text = `${done} of ${c.total} done: ${c.completed} completed, ${c.failed} failed`;
  const pct = (n: number) => `${c.total === 0 ? 0 : Math.min(100, (n / c.total) * 100).toFixed(2)}%`;
  return (
    <div class="batch-progress">
      <div
        class="bar"
        role="progressbar"
        aria-label={`Progress of ${props.batch.id}`}
        aria-valuemin={0}
        aria-valuemax={c.total}
        aria-valuenow={done}
        aria-valuetext={text}
        data-testid="batch-progress"
      >
        <span class="bar-used" style={{ width: pct(c.completed) }} />
        <span class="bar-failed" style={{ width: pct(c.failed) }} />
      </div>
      <span class="hint">{text}</span>
    </div>
  );
}

function BatchRow(props: { batch: Batch; onChanged: () => void }) {
  const b = props.batch;
  const [error, setError] = useState<unknown>(null);
  const run = (work: () => Promise<unknown>) => () => {
    setError(null);
    work().then(props.onChanged, setError);
  };
  return (
    <tr data-batch-id={b.id} data-status={b.status}>
      <td data-label="Batch">
        <code>{b.id}</code>
        <div class="hint">{b.endpoint}</div>
      </td>
      <td data-label="Created">
        <When at={iso(b.created_at)} />
      </td>
      <td data-label="Status">
        <StatusBadge status={b.status} />
        {b.errors?.data.map((e, i) => (
          <div key={i} class="error">
            {e.line && !/^line \d/i.test(e.message) ? `Line ${e.line}: ` : ""}
            {e.message}
          </div>
        ))}
      </td>
      <td data-label="Progress">
        <Progress batch={b} />
      </td>
      <td data-label="Files">
        <div class="actions">
          {b.output_file_id && (
            <button type="button" class="secondary" onClick={run(() => download(b.output_file_id as string, `${b.id}-output.jsonl`))} aria-label={`Download the output of ${b.id}`}>
              Output
            </button>
          )}
          {b.error_file_id && (
            <button type="button" class="secondary" onClick={run(() => download(b.error_file_id as string, `${b.id}-errors.jsonl`))} aria-label={`Download the errors of ${b.id}`}>
              Errors
            </button>
          )}
          {!isFinal(b) && b.status !== "cancelling" && (
            <button type="button" class="danger" onClick={run(() => postJson(`/v1/batches/${encodeURIComponent(b.id)}/cancel`))} aria-label={`Cancel ${b.id}`}>
              Cancel
            </button>
          )}
        </div>
        <ErrorNote error={error} />
      </td>
    </tr>
  );
}

export function BatchesPage() {
  // While a batch runs the list is read again; a failed read too, so that a network blip does not freeze it.
  const { data: page, error, reload } = usePolled<ListPage<Batch>>("/v1/batches?limit=50", {
    nextMs: (answer) => (answer.data.some((b) => !isFinal(b)) ? POLL_MS : null),
    retryMs: POLL_MS * 2,
  });

  return (
    <>
      <PageHeading>Batches</PageHeading>
      <p>Many requests in one file, run as quota allows; the output file holds one answer a line.</p>
      <CreateBatch onCreated={reload} />
      <h3>My batches</h3>
      <ErrorNote error={error} />
      {!page && !error && <p role="status">Loading…</p>}
      {page && page.data.length === 0 && <p>No batches yet.</p>}
      {page && page.data.length > 0 && (
        <DataTable label="Batches" testId="batches-table" caption="Your batches, newest first; the list updates while one runs" columns={["Batch", "Created", "Status", "Progress", "Files"]}>
          {page.data.map((b) => (
            <BatchRow key={b.id} batch={b} onChanged={reload} />
          ))}
        </DataTable>
      )}
    </>
  );
}

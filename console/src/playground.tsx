/**
 * Playground: submit a prompt with `POST /api/v1/inference` (`stream: true`), then read
 * `/events/{id}?tokens=true` and append each token as it comes. Times are measured from the click:
 * time to first token, and total until the final event. The request has an id from the start, so
 * it can be stopped (cancelled) and opened in My requests.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, announceSettled, events, FINAL_STATUSES, getJson, postJson, type RequestItem, type Status } from "./api.js";
import { QuotaBars, useQuota } from "./quota.js";
import { ErrorNote, Field, ms, PageHeading, StatusBadge } from "./ui.js";

interface Run {
  requestId: string | null;
  status: Status | "submitting";
  text: string;
  firstTokenMs: number | null;
  totalMs: number | null;
  final: RequestItem | null;
}

const EMPTY_RUN: Run = { requestId: null, status: "submitting", text: "", firstTokenMs: null, totalMs: null, final: null };

export function Playground() {
  const [models, setModels] = useState<string[]>([]);
  const [model, setModel] = useState("");
  const [maxTokens, setMaxTokens] = useState("100");
  const [temperature, setTemperature] = useState("0.8");
  const [prompt, setPrompt] = useState("Once upon a time");
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<unknown>(null);
  const abort = useRef<AbortController | null>(null);
  const { quota, error: quotaError } = useQuota();

  useEffect(() => {
    getJson<{ data: Array<{ id: string }> }>("/v1/models")
      .then((list) => {
        const ids = list.data.map((m) => m.id);
        setModels(ids);
        setModel((current) => current || ids[0] || "");
      })
      .catch(setError);
    // Leaving the page stops reading (the request itself goes on; it is in My requests).
    return () => abort.current?.abort();
  }, []);

  const running = run !== null && !FINAL_STATUSES.includes(run.status as Status);

  const generate = async (event: Event) => {
    event.preventDefault();
    if (running) return;
    setError(null);
    const started = performance.now();
    const controller = new AbortController();
    abort.current = controller;
    let current: Run = { ...EMPTY_RUN };
    const update = (patch: Partial<Run>) => setRun((current = { ...current, ...patch }));
    update({});
    try {
      const body = { model, prompt, max_length: Number(maxTokens), temperature: Number(temperature), stream: true };
      const accepted = await postJson<{ request_id: string; status: Status }>("/api/v1/inference", body);
      update({ requestId: accepted.request_id, status: accepted.status });
      for await (const message of events(`/events/${accepted.request_id}?tokens=true`, controller.signal)) {
        if (message.event === "token") {
          const token = JSON.parse(message.data) as { text: string };
          update({
            text: current.text + token.text,
            status: "processing",
            firstTokenMs: current.firstTokenMs ?? performance.now() - started,
          });
        } else if (message.event === "error") {
          const body = JSON.parse(message.data) as { error?: { message?: string } };
          throw new Error(body.error?.message ?? "the event stream failed");
        } else if ((FINAL_STATUSES as string[]).includes(message.event)) {
          const final = JSON.parse(message.data) as RequestItem;
          update({ status: final.status, final, totalMs: performance.now() - started, text: final.result?.output_text ?? current.text });
        } else {
          update({ status: message.event as Status });
        }
      }
      if (!current.final) throw new Error("the event stream ended before the request finished; see My requests");
    } catch (failure) {
      if (controller.signal.aborted) return;
      setError(failure);
      if (current.requestId === null) setRun(null);
    } finally {
      if (current.requestId !== null) announceSettled();
    }
  };

  const stop = async () => {
    if (!run?.requestId) return;
    try {
      await postJson(`/api/v1/inference/${run.requestId}/cancel`, {});
    } catch (failure) {
      // Finished in the meantime: nothing to stop; anything else is worth saying.
      if (!(failure instanceof ApiError && failure.status === 409)) setError(failure);
    }
  };

  return (
    <>
      <PageHeading>Playground</PageHeading>
      <div class="playground">
        <form class="card" onSubmit={generate} aria-label="Generate">
          <div class="row">
            <div class="field">
              <label for="model">Model</label>
              <select id="model" value={model} onChange={(e) => setModel(e.currentTarget.value)} required>
                {models.length === 0 && <option value="">Loading models…</option>}
                {models.map((id) => (
                  <option key={id} value={id}>
                    {id.split("/").pop()}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="max-tokens">Max tokens</label>
              <input id="max-tokens" type="number" inputMode="numeric" min={1} step={1} value={maxTokens} onInput={(e) => setMaxTokens(e.currentTarget.value)} required />
            </div>
            <div class="field">
              <label for="temperature">Temperature</label>
              <input id="temperature" type="number" inputMode="decimal" min={0} max={2} step={0.1} value={temperature} onInput={(e) => setTemperature(e.currentTarget.value)} required />
            </div>
          </div>
          <div class="field">
            <label for="prompt">Prompt</label>
            <textarea id="prompt" rows={4} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} required />
          </div>
          <div class="actions">
            <button type="submit" disabled={running || models.length === 0}>
              {running ? "Generating…" : "Generate"}
            </button>
            <button type="button" class="secondary" onClick={stop} disabled={!running || !run?.requestId}>
              Stop
            </button>
          </div>
          <ErrorNote error={error} />
        </form>

        <section class="card output" aria-labelledby="output-heading">
          <h3 id="output-heading">Output</h3>
          <pre data-testid="output" aria-busy={running} aria-label="Generated text" tabIndex={0}>
            {run?.text || (running ? "" : "The generated text appears here as it is produced.")}
          </pre>
          {run && (
            <dl class="facts">
              <Field label="Status" testId="run-status">
                <StatusBadge status={run.status} />
              </Field>
              <Field label="Request">{run.requestId ? <a href={`#/requests/${run.requestId}`}>{run.requestId}</a> : "—"}</Field>
              <Field label="Time to first token" testId="ttft">
                {ms(run.firstTokenMs)}
              </Field>
              <Field label="Total time" testId="total-time">
                {ms(run.totalMs)}
              </Field>
              <Field label="Tokens (prompt + completion)" testId="run-usage">
                {run.final?.usage ? `${run.final.usage.prompt_tokens} + ${run.final.usage.completion_tokens} = ${run.final.usage.total_tokens}` : "—"}
              </Field>
              {run.final?.error && <Field label="Error">{run.final.error.message}</Field>}
            </dl>
          )}
        </section>

        <aside class="card" aria-labelledby="quota-aside-heading">
          <h3 id="quota-aside-heading">Your quota</h3>
          <ErrorNote error={quotaError} />
          {quota && <QuotaBars quota={quota} compact />}
        </aside>
      </div>
    </>
  );
}

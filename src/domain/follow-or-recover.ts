/**
 * A request's stream as a client needs it, even when the stream itself fails it: the stored events
 * and then the live ones (followStream); when the stream cannot serve the rest (its events were
 * trimmed or expired, a delta append failed, the final event never came because Redis was away
 * when the collector stored the outcome), the stored request completes it: the text not yet sent
 * as one delta, then the final event, both numbered on from the last seq served.
 */
import { followStream, StreamGapError } from "./follow-stream.js";
import type { EventBus, RequestStore, RequestStreams, RequestView, StreamEvent } from "./ports.js";
import { waitForFinal } from "./wait-for-final.js";

export interface RecoverDeps {
  streams: RequestStreams;
  events: EventBus;
  requests: Pick<RequestStore, "view">;
  recheckMs: number;
}

/** How long a stream may lag behind a request the store says is final before the store takes over. */
export const STREAM_GRACE_MS = 3_000;

export function finalEventOf(view: RequestView, seq: number): StreamEvent {
  return {
    seq,
    type: "final",
    status: view.status === "completed" || view.status === "cancelled" ? view.status : "failed",
    usage: view.usage,
    finishReason: view.finishReason,
    error: view.error,
  };
}

export async function* followOrRecover(deps: RecoverDeps, requestId: string, after: number, signal: AbortSignal, graceMs = STREAM_GRACE_MS): AsyncGenerator<StreamEvent> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  let lagging = false;
  let timer: NodeJS.Timeout | undefined;
  // The store's word on the request, raced against the stream: final there and silent here for
  // `graceMs` means the stream will not finish it.
  const stored = waitForFinal(deps, requestId, { signal: stop.signal }).then(
    (view) => {
      timer = setTimeout(() => {
        lagging = true;
        stop.abort();
      }, graceMs);
      return view;
    },
    () => null,
  );
  let last = after;
  let text = "";
  try {
    try {
      for await (const event of followStream(deps.streams, requestId, after, { signal: stop.signal })) {
        last = event.seq;
        if (event.type === "delta") text += event.text;
        yield event;
        if (event.type === "final") return;
      }
    } catch (error) {
      if (!(error instanceof StreamGapError)) throw error;
      lagging = true;
    }
    if (!lagging || signal.aborted) return;
    const view = (await stored) ?? (await waitForFinal(deps, requestId, { signal }));
    // The text the client has not seen, when what it saw is a prefix of the stored text (a reader
    // that started after 0 saw text this follow does not know of: it gets the final event only).
    const full = view.outputText ?? "";
    if (after === 0 && full.length > text.length && full.startsWith(text)) yield { seq: ++last, type: "delta", text: full.slice(text.length) };
    yield finalEventOf(view, last + 1);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

/**
 * The ports of streaming and cancellation: per-request token streams (RequestStreams) and the
 * run-or-cancel decision (RunStates). Part of the domain's interfaces (ports.ts re-exports them).
 */
import type { TokenUsage } from "./contracts.js";

// ---------------------------------------------------------------- request streams (token deltas)

/**
 * One event of a request's stream. `seq` starts at 1 for a request and grows by exactly 1 with each
 * event, so a reader that knows the last seq it saw resumes with no gap and no duplicate.
 * "delta": generated text (the worker); "final": the outcome is stored and settled (the collector),
 * always the last event.
 */
export type StreamEvent =
  | { seq: number; type: "delta"; text: string }
  | {
      seq: number;
      type: "final";
      status: "completed" | "failed" | "cancelled";
      usage: TokenUsage | null;
      finishReason: "stop" | "length" | "cancelled" | null;
      error: { code: string; message: string } | null;
    };

/**
 * Per-request event streams that keep their newest events for a while (Redis Streams with a bound
 * and a TTL on real servers, in process when embedded), so any replica serves any reader and a
 * reader that comes back resumes from the stored events.
 */
export interface RequestStreams {
  /**
   * Appends the events (in seq order) to the request's stream and tells its live watchers, in one
   * round trip. The stream keeps at most its newest `bound` events, for `ttl` after the last append.
   */
  append(requestId: string, events: StreamEvent[]): Promise<void>;
  /** Stored events with seq > `after`, oldest first, at most `limit`. */
  read(requestId: string, after: number, limit: number): Promise<StreamEvent[]>;
  /**
   * Live events as they are appended (each append's events in one call). Resolves once live; returns
   * the unsubscribe function. Events appended before the watch are not replayed: read them.
   */
  watch(requestId: string, listener: (events: StreamEvent[]) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- cancellation (who runs a request)

/**
 * The one place that decides, per request, between running it and cancelling it: the worker claims
 * a request before calling the model, a cancel marks it, and whichever comes first wins.
 */
export interface RunStates {
  /**
   * The worker, before calling the model: "run" (claimed now, or already claimed by an earlier
   * delivery of the same request) or "cancelled" (a cancel came first: do not run it).
   */
  claimRun(requestId: string): Promise<"run" | "cancelled">;
  /**
   * A cancel: "before_start" (no worker claimed it; it never will, and the caller finishes it),
   * "running" (a worker holds it; its watchers were told to abort it), or "already_cancelled".
   */
  cancel(requestId: string): Promise<"before_start" | "running" | "already_cancelled">;
  /**
   * Cancels of running requests, for workers; resolves once live; returns the unsubscribe function.
   * Every watcher hears every cancel of a running request (it checks whether it runs that one).
   */
  watchCancels(listener: (requestId: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

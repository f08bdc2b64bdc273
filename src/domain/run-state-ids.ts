/**
 * Which strings the RunStates adapters take as a request id. Ids are UUIDs in practice (the
 * gateway makes them), but the adapters only need what keeps their keys and notices sound: 1..256
 * printable characters without whitespace, and without '{' or '}' (the id is a Redis hash tag).
 * A cancel notice whose payload fails this is dropped, not handed to a worker.
 */
const PLAUSIBLE_REQUEST_ID = /^[^\s{}\p{Cc}]{1,256}$/u;

export function isPlausibleRequestId(value: unknown): value is string {
  return typeof value === "string" && PLAUSIBLE_REQUEST_ID.test(value);
}

export function assertRunStateRequestId(requestId: string): void {
  if (!isPlausibleRequestId(requestId)) {
    throw new RangeError("requestId must be 1..256 characters without whitespace, '{' or '}'");
  }
}

/** A time to live in ms: a positive whole number (Redis PX takes nothing else). */
export function assertTtlMs(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError("ttlMs must be a positive whole number of milliseconds");
}

/** How long a run state is kept after its last change, unless `ttlMs` says otherwise: 24 hours. */
export const DEFAULT_RUN_STATE_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * The client's one error class. An answer the platform refused carries the platform's stable code
 * (the README's error table: `unauthorized`, `quota_exceeded`, ...). A few codes exist only on
 * the client side, for what never got an answer from the platform:
 *
 * - `unreachable`: the request could not be sent or its answer not read (DNS, refused connection,
 *   reset); `status` is 0. Nothing is known about whether the platform acted on it.
 * - `bad_response`: an answer that is not the platform's JSON (a proxy's HTML page, say); `status`
 *   is the HTTP status it came with.
 * - `aborted`: the caller's AbortSignal fired; `status` is 0.
 * - `wait_timeout`: `wait()` ran past its `timeoutMs`; the request itself goes on.
 */

export const CLIENT_ERROR_CODES = ["unreachable", "bad_response", "aborted", "wait_timeout"] as const;

export class ClientError extends Error {
  /** The HTTP status of the answer; 0 when there was none. */
  readonly status: number;
  /** The platform's stable error code, or one of CLIENT_ERROR_CODES. */
  readonly code: string;
  /** From `Retry-After` (seconds), when the answer had one (429, 503). */
  readonly retryAfterSeconds: number | undefined;
  /** The error body's `details` (`field` of a bad parameter, `limit` of a quota), when present. */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: string,
    message: string,
    options: { status?: number; retryAfterSeconds?: number; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClientError";
    this.code = code;
    this.status = options.status ?? 0;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.details = options.details;
  }
}

/** `Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110 allows both). */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

/** A non-2xx answer as a ClientError, its code and message from the platform's JSON error body. */
export async function errorFromResponse(response: Response): Promise<ClientError> {
  const retryAfterSeconds = parseRetryAfter(response.headers.get("retry-after"));
  const base = { status: response.status, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) };
  let text = "";
  try {
    text = await response.text();
  } catch (cause) {
    return new ClientError("unreachable", `the answer (HTTP ${response.status}) could not be read`, { ...base, cause });
  }
  try {
    // Our shape is {"error": {"code", "message", "details"}}; the /v1 routes' OpenAI shape has the same code.
    const error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error;
    if (error && typeof error.code === "string") {
      const details = error.details && typeof error.details === "object" ? (error.details as Record<string, unknown>) : undefined;
      return new ClientError(error.code, typeof error.message === "string" ? error.message : error.code, { ...base, ...(details ? { details } : {}) });
    }
  } catch {
    // not JSON: below
  }
  return new ClientError("bad_response", `HTTP ${response.status} ${response.statusText || ""}`.trim() + " without the platform's error body", base);
}

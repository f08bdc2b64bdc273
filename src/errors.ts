/**
 * Every error a client, a stored request or an operator can see carries a stable code, and this
 * table is the one place that says what each code means: its HTTP status, whether retrying the same
 * request later can succeed, and one line of documentation (the README's error table is generated
 * from it). Codes are typed (`ErrorCode`), so nothing can raise a code the table does not hold;
 * `src/errors.test.ts` fails when a documented code is raised nowhere.
 */

interface ErrorSpec {
  /** The HTTP status of an answer with this code (for stored outcomes: what a synchronous answer would carry). */
  status: number;
  /** Whether sending the same request again later can succeed. */
  retryable: boolean;
  /** One line for users. */
  doc: string;
  /**
   * A stored request that failed with this code failed on its own input: it counts against the
   * request limits (no tokens). Every other failure is the platform's and is refunded.
   */
  chargedOnFailure?: true;
}

export const ERRORS = {
  // ---- the request itself is wrong
  invalid_json: { status: 400, retryable: false, doc: "The body is empty or not valid JSON." },
  invalid_body: { status: 400, retryable: false, doc: "The body is not a JSON object, or its length does not match Content-Length." },
  invalid_parameter: { status: 400, retryable: false, chargedOnFailure: true, doc: "A parameter is out of range or of the wrong type; `details.field` names it." },
  unknown_field: { status: 400, retryable: false, doc: "The body has a field the API does not know; `details.field` names it." },
  missing_prompt: { status: 400, retryable: false, doc: "`prompt` is missing or empty." },
  prompt_too_long: { status: 400, retryable: false, chargedOnFailure: true, doc: "The prompt is longer than `MAX_PROMPT_CHARS`, or than the model's context." },
  invalid_request_id: { status: 400, retryable: false, doc: "The request id in the path is not a UUID." },
  malformed_request: { status: 400, retryable: false, doc: "The HTTP request could not be parsed (bad request line, URL encoding or headers)." },
  unauthorized: { status: 401, retryable: false, doc: "The API key is missing, malformed, unknown or revoked." },
  forbidden: { status: 403, retryable: false, doc: "The key's user is disabled." },
  admin_required: { status: 403, retryable: false, doc: "An admin route (`/api/v1/admin/*`) was called without `ADMIN_API_KEY` (or the platform has none set)." },
  conflict: { status: 409, retryable: false, doc: "What the admin route would create exists already (a user id taken)." },
  not_found: { status: 404, retryable: false, doc: "No such route (or, in the admin CLI and the admin routes, no such user, tier or key)." },
  request_not_found: { status: 404, retryable: false, doc: "No such request for this key (someone else's request included)." },
  file_not_found: { status: 404, retryable: false, doc: "No such file for this key (someone else's file included); in a batch's `errors.data[]`: its input file was deleted or expired before the batch was validated." },
  webhook_not_found: { status: 404, retryable: false, doc: "No such webhook endpoint for this key (someone else's endpoint included)." },
  batch_not_found: { status: 404, retryable: false, doc: "No such batch for this key (someone else's batch included)." },
  model_not_found: { status: 404, retryable: false, doc: "The model is not served here, or its file could not be found or loaded." },
  method_not_allowed: { status: 405, retryable: false, doc: "The route exists but not for this method; `Allow` lists the methods it takes." },
  payload_too_large: { status: 413, retryable: false, doc: "The body is larger than the limit (`BODY_LIMIT_BYTES` at the gateway)." },
  uri_too_long: { status: 414, retryable: false, doc: "A path segment of the URL is too long." },
  unsupported_media_type: { status: 415, retryable: false, doc: "Send the body as `application/json`." },
  headers_too_large: { status: 431, retryable: false, doc: "The request line and headers together are too large." },
  invalid_idempotency_key: { status: 400, retryable: false, doc: "The `Idempotency-Key` header must be 1 to 255 visible ASCII characters." },
  idempotency_key_reused: { status: 409, retryable: false, doc: "This `Idempotency-Key` was used (within 24 h) for a request with a different body or route." },
  invalid_webhook_url: { status: 400, retryable: false, doc: "The webhook `url` is not an absolute http(s) URL of at most 2048 characters without credentials." },
  webhook_address_refused: { status: 400, retryable: false, doc: "The webhook URL's host resolves to a loopback, private or link-local address (allowed only with `WEBHOOK_ALLOW_PRIVATE`), or to none." },
  unknown_webhook_event: { status: 400, retryable: false, doc: "`events` names an event type that does not exist; `details.field` names the entry." },
  webhook_limit_reached: { status: 409, retryable: false, doc: "The user has `WEBHOOK_MAX_ENDPOINTS_PER_USER` endpoints already; delete one first." },
  request_cancelled: { status: 409, retryable: false, doc: "The request was cancelled before it finished (its answer holds what was generated until then)." },

  // ---- limits: retry later
  quota_exceeded: { status: 429, retryable: true, doc: "A quota limit is reached; `details.limit` names it and `Retry-After` says when it resets." },
  queue_deadline_unmeetable: { status: 429, retryable: true, doc: "The estimated wait before the request would start is longer than its `max_queue_seconds`; nothing was reserved. `Retry-After` says when the backlog should be short enough." },
  rate_limited: { status: 429, retryable: true, doc: "Too many requests a minute from this address; see `Retry-After`." },
  request_timeout: { status: 408, retryable: true, doc: "The request was not received completely in time." },

  // ---- the platform: retry later
  service_unavailable: { status: 503, retryable: true, doc: "A backing service (broker, database, quota store) is down or the service is stopping; nothing was stored or charged." },
  queue_full: { status: 503, retryable: true, doc: "Every model sequence is busy and the wait queue is full; see `Retry-After`." },
  model_not_ready: { status: 503, retryable: true, doc: "The model is still loading (or failed to load); see `Retry-After`." },
  generation_failed: { status: 500, retryable: true, doc: "The model engine failed while generating." },
  internal_error: { status: 500, retryable: true, doc: "An unexpected error; the details are in the server's log under the request id." },
  config_invalid: { status: 500, retryable: false, doc: "A setting is invalid or missing (start-up and the admin CLI only)." },

  // ---- outcomes stored on a failed request (GET /api/v1/requests/{id}: `error.code`)
  attempts_exhausted: { status: 503, retryable: true, doc: "The model server kept failing transiently until `WORKER_MAX_ATTEMPTS` was used up." },
  timeout: { status: 504, retryable: true, doc: "The request did not finish within `RESERVATION_TIMEOUT_MS`; its reservation was released." },
  deadline_exceeded: { status: 504, retryable: true, doc: "The request was still queued when its `max_queue_seconds` ran out; it never ran and its reservation was released." },
  missing_usage: { status: 502, retryable: true, doc: "The model server reported no token usage, so the result could not be settled and was not kept." },
  ml_http_error: { status: 502, retryable: false, doc: "The model server refused the request with a status and code of its own; the message names both." },
  ml_timeout: { status: 504, retryable: true, doc: "The model server did not answer within `ML_REQUEST_TIMEOUT_MS` (retried, then `attempts_exhausted`)." },
  ml_unreachable: { status: 502, retryable: true, doc: "The model server could not be reached (retried, then `attempts_exhausted`)." },
  ml_bad_response: { status: 502, retryable: true, doc: "The model server answered with a body the worker cannot read (retried, then `attempts_exhausted`)." },
  worker_error: { status: 500, retryable: true, doc: "The worker failed unexpectedly while calling the model (retried, then `attempts_exhausted`)." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** Code → HTTP status (kept for callers and tests that only need the status). */
export const ERROR_STATUS = Object.fromEntries(ERROR_CODES.map((code) => [code, ERRORS[code].status])) as {
  readonly [C in ErrorCode]: (typeof ERRORS)[C]["status"];
};

/** Whether a request that failed with `code` is charged (counts against the request limits) rather than refunded. */
export function chargedOnFailure(code: string): boolean {
  return isErrorCode(code) && (ERRORS[code] as ErrorSpec).chargedOnFailure === true;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERRORS, value);
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  readonly retryAfterSeconds: number | undefined;
  /** Facts for the log only (sizes, hosts, counts): never part of an answer. */
  readonly internal: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; retryAfterSeconds?: number; cause?: unknown; internal?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.internal = options.internal;
  }

  get retryable(): boolean {
    return ERRORS[this.code].retryable;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

/** OpenAI's error `type`, which its SDKs read to pick an exception class. */
function openAiType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** The error in OpenAI's shape, for `/v1` routes: `code` is still the stable code of the table. */
export function openAiErrorBody(error: AppError): OpenAiErrorBody {
  const field = error.details?.field;
  return {
    error: { message: error.message, type: openAiType(error.status), param: typeof field === "string" ? field : null, code: error.code },
  };
}

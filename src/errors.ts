/**
 * Every error a client or operator can see carries a stable code. The table below is the one place
 * that maps a code to its HTTP status, so components never invent statuses of their own.
 */
export const ERROR_STATUS = {
  invalid_json: 400,
  invalid_body: 400,
  invalid_parameter: 400,
  unknown_field: 400,
  missing_prompt: 400,
  prompt_too_long: 400,
  unsupported_media_type: 415,
  payload_too_large: 413,
  invalid_request_id: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  request_not_found: 404,
  model_not_found: 404,
  method_not_allowed: 405,
  quota_exceeded: 429,
  rate_limited: 429,
  queue_full: 503,
  service_unavailable: 503,
  model_not_ready: 503,
  upstream_timeout: 504,
  upstream_error: 502,
  generation_failed: 500,
  internal_error: 500,
  config_invalid: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

/**
 * The client's view of the HTTP API, camelCase. The wire is snake_case (README "HTTP API"); the
 * conversions live next to the types so that a renamed field is changed in one file.
 */

export type RequestState = "queued" | "processing" | "completed" | "failed" | "cancelled";
export const FINAL_STATES: ReadonlySet<string> = new Set<RequestState>(["completed", "failed", "cancelled"]);

/** The generation parameters of POST /api/v1/inference; each left out takes the platform's default. */
export interface GenerationParams {
  maxLength?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  numReturnSequences?: number;
  stop?: string | string[];
  seed?: number;
  model?: string;
}

export interface SubmitOptions {
  /** Sent as `Idempotency-Key`: the same key (per user) returns the original request instead of a second one. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface Submitted {
  requestId: string;
  status: RequestState;
  model: string;
  estimatedTokens: number;
  userId: string;
  timestamp: string;
  statusUrl: string;
  eventsUrl: string;
  cancelUrl: string;
  /** True when an Idempotency-Key matched an earlier request (HTTP 200 instead of 202). */
  replayed: boolean;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface RequestStatus {
  requestId: string;
  status: RequestState;
  model: string;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  estimatedTokens: number;
  /** Completed, or cancelled (then it holds what was generated until the cancel). */
  result: { outputText: string | null; outputs?: string[] } | null;
  usage: Usage | null;
  error: { code: string; message: string } | null;
}

export interface WindowUsage {
  requests: number;
  tokensUsed: number;
  tokensReserved: number;
}

/** A limit of null is unlimited. */
export interface Limits {
  requests: number | null;
  tokens: number | null;
}

export interface Quota {
  userId: string;
  limits: { daily: Limits; monthly: Limits };
  window: { day: string; month: string };
  daily: WindowUsage;
  monthly: WindowUsage;
  resets: { daily: string; monthly: string };
}

export interface WaitOptions {
  /** Give up (ClientError `wait_timeout`) after this long; the request itself goes on. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with each status the request passes through (queued, processing), for progress display. */
  onStatus?: (status: RequestState) => void;
}

export interface StreamOptions extends SubmitOptions {
  /** Called once the request is admitted, before the first token (its id, to cancel it say). */
  onSubmitted?: (submitted: Submitted) => void;
}

export interface TokensOptions {
  /** Resume after this token seq (a Last-Event-ID); 0 or unset: from the start. */
  after?: number;
  signal?: AbortSignal;
}

export type StreamEvent = { type: "token"; seq: number; text: string } | ({ type: "final" } & RequestStatus);

// ---- wire → client

type Wire = Record<string, any>;

export function submittedFrom(w: Wire, httpStatus: number): Submitted {
  return {
    requestId: w.request_id,
    status: w.status,
    model: w.model,
    estimatedTokens: w.estimated_tokens,
    userId: w.user_id,
    timestamp: w.timestamp,
    statusUrl: w.status_url,
    eventsUrl: w.events_url,
    cancelUrl: w.cancel_url,
    replayed: httpStatus === 200,
  };
}

function usageFrom(w: Wire | null | undefined): Usage | null {
  if (!w) return null;
  return { promptTokens: w.prompt_tokens, completionTokens: w.completion_tokens, totalTokens: w.total_tokens };
}

export function statusFrom(w: Wire): RequestStatus {
  const result = w.result ? { outputText: w.result.output_text ?? null, ...(w.result.outputs ? { outputs: w.result.outputs } : {}) } : null;
  return {
    requestId: w.request_id,
    status: w.status,
    model: w.model,
    createdAt: w.created_at,
    startedAt: w.started_at ?? null,
    completedAt: w.completed_at ?? null,
    estimatedTokens: w.estimated_tokens,
    result,
    usage: usageFrom(w.usage),
    error: w.error ?? null,
  };
}

/** The cancel route answers a subset of the status body. */
export function cancelledFrom(w: Wire): Pick<RequestStatus, "requestId" | "status" | "usage" | "error"> {
  return { requestId: w.request_id, status: w.status, usage: usageFrom(w.usage), error: w.error ?? null };
}

const windowFrom = (w: Wire): WindowUsage => ({ requests: w.requests, tokensUsed: w.tokens_used, tokensReserved: w.tokens_reserved });

export function quotaFrom(w: Wire): Quota {
  return {
    userId: w.user_id,
    limits: w.limits,
    window: w.window,
    daily: windowFrom(w.daily),
    monthly: windowFrom(w.monthly),
    resets: w.resets,
  };
}

// ---- client → wire

/** The body fields of the parameters, snake_case; undefined ones are left out (the platform's default). */
export function paramsToWire(p: GenerationParams): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    max_length: p.maxLength,
    temperature: p.temperature,
    top_p: p.topP,
    top_k: p.topK,
    repetition_penalty: p.repetitionPenalty,
    num_return_sequences: p.numReturnSequences,
    stop: p.stop,
    seed: p.seed,
    model: p.model,
  };
  for (const key of Object.keys(wire)) if (wire[key] === undefined) delete wire[key];
  return wire;
}

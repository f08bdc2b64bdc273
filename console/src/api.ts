/**
 * The console's only way to the platform: same-origin fetch with the signed-in key. Every failure
 * becomes an ApiError whose message is a sentence a person can read (the API's own
 * `{error:{message}}` when it sent one), so pages show `error.message` and nothing else.
 */

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const KEY_STORAGE = "ml-inference.console.key";

/** The key lives in sessionStorage: it goes away with the tab, and no other site can read it. */
export const session = {
  key(): string | null {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  signIn(key: string): void {
    sessionStorage.setItem(KEY_STORAGE, key.trim());
  },
  signOut(): void {
    sessionStorage.removeItem(KEY_STORAGE);
  },
};

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = session.key();
  // An empty key is anonymous access (allowed when the platform runs with ANONYMOUS_ACCESS).
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

async function failure(response: Response): Promise<ApiError> {
  let message = `the server answered ${response.status} ${response.statusText}`.trim();
  let code: string | undefined;
  try {
    const body = (await response.json()) as { error?: { message?: unknown; code?: unknown } };
    if (typeof body.error?.message === "string") message = body.error.message;
    if (typeof body.error?.code === "string") code = body.error.code;
  } catch {
    // Not our JSON (a proxy's page, say): the status line is all there is.
  }
  return new ApiError(message, response.status, code);
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: headers(init.headers as Record<string, string> | undefined) });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError("the platform could not be reached; check your connection and try again", 0, undefined);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await (await call(path, signal ? { signal } : {})).json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit = body === undefined ? { method: "POST" } : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  return (await (await call(path, init)).json()) as T;
}

/** A multipart upload (the browser writes the boundary into the content type itself). */
export async function postForm<T>(path: string, form: FormData): Promise<T> {
  return (await (await call(path, { method: "POST", body: form })).json()) as T;
}

export async function deleteJson<T>(path: string): Promise<T> {
  return (await (await call(path, { method: "DELETE" })).json()) as T;
}

/** A file's bytes (a batch's output), for the browser to save. */
export async function getBlob(path: string): Promise<Blob> {
  return (await call(path)).blob();
}

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Server-Sent Events read with fetch's body reader (EventSource cannot send the Authorization
 * header). Yields each event as it arrives; ends when the server closes the stream.
 */
export async function* events(path: string, signal: AbortSignal): AsyncGenerator<SseEvent> {
  const response = await call(path, { headers: { accept: "text/event-stream" }, signal });
  if (!response.body) throw new ApiError("the browser gave no stream to read", 0, undefined);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseBlock(block);
        if (parsed) yield parsed;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block: string): SseEvent | undefined {
  const event: SseEvent = { event: "message", data: "" };
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue; // comments are heartbeats
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
  }
  if (data.length === 0) return undefined;
  event.data = data.join("\n");
  return event;
}

// ---------------------------------------------------------------- the API's shapes the console reads

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type Status = "queued" | "processing" | "completed" | "failed" | "cancelled";
export const FINAL_STATUSES: readonly Status[] = ["completed", "failed", "cancelled"];

export interface RequestItem {
  request_id: string;
  status: Status;
  model: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  estimated_tokens: number;
  usage: Usage | null;
  error: { code: string; message: string } | null;
  result?: { output_text: string | null; outputs?: string[] } | null;
}

export interface RequestPage {
  data: RequestItem[];
  has_more: boolean;
  next_cursor: string | null;
}

export interface QuotaWindow {
  requests: number;
  tokens_used: number;
  tokens_reserved: number;
}

export interface Quota {
  user_id: string;
  limits: { daily: { requests: number | null; tokens: number | null }; monthly: { requests: number | null; tokens: number | null } };
  daily: QuotaWindow;
  monthly: QuotaWindow;
  resets: { daily: string; monthly: string };
}

export type BatchStatus = "validating" | "failed" | "in_progress" | "finalizing" | "completed" | "expired" | "cancelling" | "cancelled";
export const FINAL_BATCH_STATUSES: readonly BatchStatus[] = ["completed", "failed", "expired", "cancelled"];

/** OpenAI's Batch object, as far as the console reads it (times are unix seconds). */
export interface Batch {
  id: string;
  status: BatchStatus;
  endpoint: string;
  input_file_id: string;
  output_file_id?: string;
  error_file_id?: string;
  created_at: number;
  completed_at?: number;
  request_counts: { total: number; completed: number; failed: number };
  errors?: { data: Array<{ code: string; message: string; line?: number | null }> };
}

export interface ListPage<T> {
  data: T[];
  has_more: boolean;
  last_id: string | null;
}

export interface AdminUser {
  user_id: string;
  tier: string;
  disabled: boolean;
  active_keys: number;
  created_at: string;
}

export interface AdminTier {
  name: string;
  limits: { daily_requests: number | null; daily_tokens: number | null; monthly_requests: number | null; monthly_tokens: number | null };
}

export interface AdminKey {
  user_id: string;
  key_id: string;
  api_key: string;
}

export interface AdminQueue {
  queue: string;
  ready: number;
  unacked: number;
  open_requests: number;
  finished_recently: number;
  window_seconds: number;
  throughput_per_second: number;
}

/** A webhook endpoint as its owner sees it (`GET /api/v1/webhooks`); never its secret. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  /** "all": every event type, those added later included. */
  events: string[] | "all";
  status: "enabled" | "disabled";
  disabled_reason: string | null;
  disabled_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  last_delivered_at: string | null;
  pending_deliveries: number;
  created_at: string;
}

export interface WebhookList {
  data: WebhookEndpoint[];
  /** Every event type registration accepts. */
  event_types: string[];
}

/** `POST /api/v1/webhooks`'s answer: the only time the signing secret is shown. */
export interface WebhookCreated {
  id: string;
  url: string;
  events: string[] | "all";
  secret: string;
}

/** Pages tell each other that a request settled (the quota view then reads the quota again). */
export const settled = new EventTarget();
export const announceSettled = () => settled.dispatchEvent(new Event("settled"));

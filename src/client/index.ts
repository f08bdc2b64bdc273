/**
 * A typed client of the platform's HTTP API (`import { Client } from "ml-inference/client"`):
 * submit, status, wait, stream, cancel and quota over the routes the README documents. It has no
 * dependency beyond `fetch` (a custom one can be passed), reads no environment variable (the CLI
 * does) and throws one error class, ClientError, for refusals and for network failures alike.
 *
 * Batches (OpenAI's Batch API on the gateway) are `client.batches` (batches.ts).
 */
import { ClientError, errorFromResponse } from "./errors.js";
import { readSse, SseParser } from "./sse.js";
import { BatchesApi } from "./batches.js";
import {
  FINAL_STATES,
  cancelledFrom,
  paramsToWire,
  quotaFrom,
  statusFrom,
  submittedFrom,
  type GenerationParams,
  type Quota,
  type RequestState,
  type RequestStatus,
  type StreamEvent,
  type StreamOptions,
  type SubmitOptions,
  type Submitted,
  type TokensOptions,
  type WaitOptions,
} from "./types.js";

export { ClientError, CLIENT_ERROR_CODES, parseRetryAfter } from "./errors.js";
export type * from "./types.js";
export { BatchesApi, DEFAULT_BATCH_ENDPOINT, FINAL_BATCH_STATES } from "./batches.js";
export type { Batch, BatchEndpoint, BatchFile, BatchPage, BatchState, BatchWaitOptions, CreateBatchOptions, RequestCounts } from "./batches.js";

export interface ClientOptions {
  /** Where the gateway and API service answer, e.g. http://localhost:8080 (one host in `all` and behind the Ingress). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`; without it only an ANONYMOUS_ACCESS platform answers. */
  apiKey?: string;
  /** A fetch of your own (a proxy agent, a test double); the global one by default. */
  fetch?: typeof fetch;
}

export type CancelResult = Pick<RequestStatus, "requestId" | "status" | "usage" | "error">;

/** Status polling interval of wait() once its event stream broke. */
const POLL_MS = 500;
/** Reconnections of a token stream in a row without a new event before giving up. */
const MAX_RECONNECTS = 5;
/** The first reconnection waits this long, doubling up to the server's `retry:` (2 s on this platform). */
const FIRST_RECONNECT_MS = 100;

type Wire = Record<string, any>;

interface SendInit {
  method?: "GET" | "POST";
  body?: unknown;
  /** A multipart body (the file upload); fetch sets its content type with the boundary. */
  form?: FormData;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

export class Client {
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchImpl: typeof fetch;
  /** The Batch API: upload a JSONL file, create, retrieve, list, cancel, wait, read the output. */
  readonly batches: BatchesApi;

  constructor(options: ClientOptions) {
    if (!options || typeof options.baseUrl !== "string" || options.baseUrl === "") throw new TypeError("Client: baseUrl is required");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey || undefined;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.batches = new BatchesApi({
      json: (path, init) => this.json(path, init),
      text: (path, init) => this.text(path, init),
      sleep,
    });
  }

  /** POST /api/v1/inference: admits the request (quota reserved) and answers at once with its id. */
  submit(prompt: string, params: GenerationParams = {}, options: SubmitOptions = {}): Promise<Submitted> {
    return this.submitBody(prompt, params, options, false);
  }

  /** GET /api/v1/status/{id}. */
  async status(requestId: string, options: { signal?: AbortSignal } = {}): Promise<RequestStatus> {
    const { body } = await this.json(`/api/v1/status/${encodeURIComponent(requestId)}`, { signal: options.signal });
    return statusFrom(body);
  }

  /** POST /api/v1/inference/{id}/cancel: the status after the cancel (a finished request is left as it was). */
  async cancel(requestId: string): Promise<CancelResult> {
    const { body } = await this.json(`/api/v1/inference/${encodeURIComponent(requestId)}/cancel`, { method: "POST" });
    return cancelledFrom(body);
  }

  /** GET /api/v1/quota: the key's limits, usage and reset times. */
  async quota(): Promise<Quota> {
    const { body } = await this.json("/api/v1/quota", {});
    return quotaFrom(body);
  }

  /**
   * The request's final status (completed, failed or cancelled: a failure is a status here, not a
   * throw). Follows GET /events/{id}, which pushes the outcome the moment it is stored; if that
   * stream breaks (a proxy timeout, a restarting API service) it polls the status instead.
   */
  async wait(requestId: string, options: WaitOptions = {}): Promise<RequestStatus> {
    // A timer of our own, not AbortSignal.timeout(): that one is unref'd, so a wait with nothing
    // else pending would let the process exit instead of timing out.
    const deadline = new AbortController();
    const timer = options.timeoutMs !== undefined ? setTimeout(() => deadline.abort(), options.timeoutMs) : undefined;
    const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
    try {
      const pushed = await this.followEvents(requestId, signal, options.onStatus);
      return pushed ?? (await this.poll(requestId, signal, options.onStatus));
    } catch (error) {
      // Which signal fired decides the code: the caller's abort, or our own deadline.
      if (deadline.signal.aborted && !options.signal?.aborted) {
        throw new ClientError("wait_timeout", `request ${requestId} did not finish within ${options.timeoutMs} ms`, { cause: error });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Submits with `stream: true` and yields the tokens as the model generates them, then one final
   * event with the stored status. Concatenated, the tokens' text is the stored output_text.
   */
  async *stream(prompt: string, params: GenerationParams = {}, options: StreamOptions = {}): AsyncGenerator<StreamEvent> {
    const submitted = await this.submitBody(prompt, params, options, true);
    options.onSubmitted?.(submitted);
    yield* this.tokens(submitted.requestId, { ...(options.signal ? { signal: options.signal } : {}) });
  }

  /**
   * The token events of a request submitted with `stream: true` (GET /events/{id}?tokens=true).
   * A dropped connection is resumed with Last-Event-ID (the last token's seq): the server sends
   * what follows it, so no token is lost or repeated. A refusal (401, 404) is thrown at once.
   */
  async *tokens(requestId: string, options: TokensOptions = {}): AsyncGenerator<StreamEvent> {
    const { signal } = options;
    let lastId = options.after !== undefined && options.after > 0 ? String(options.after) : undefined;
    let failures = 0;
    let retryMs = 2_000;
    let lastError: unknown;
    for (;;) {
      const parser = new SseParser(lastId);
      try {
        const response = await this.send(`/events/${encodeURIComponent(requestId)}?tokens=true`, {
          signal,
          headers: { accept: "text/event-stream", ...(lastId !== undefined ? { "last-event-id": lastId } : {}) },
        });
        for await (const event of readSse(bodyOf(response), parser)) {
          if (event.event === "token") {
            const data = JSON.parse(event.data) as Wire;
            lastId = parser.lastEventId;
            failures = 0;
            yield { type: "token", seq: data.seq, text: data.text };
          } else if (FINAL_STATES.has(event.event)) {
            yield { type: "final", ...statusFrom(JSON.parse(event.data) as Wire) };
            return;
          }
          // An `error` event means the server's side broke; the body ends next and we reconnect.
        }
        lastError = new ClientError("unreachable", "the token stream ended before the final event");
      } catch (error) {
        if (signal?.aborted) throw abortedError(signal, error);
        if (error instanceof ClientError && error.code !== "unreachable" && error.status < 500) throw error;
        lastError = error;
      }
      retryMs = parser.retryMs ?? retryMs;
      if (++failures > MAX_RECONNECTS) throw asClientError(lastError);
      await sleep(Math.min(retryMs, FIRST_RECONNECT_MS * 2 ** (failures - 1)), signal);
    }
  }

  // ---- internals

  private async submitBody(prompt: string, params: GenerationParams, options: SubmitOptions, stream: boolean): Promise<Submitted> {
    const headers: Record<string, string> = options.idempotencyKey !== undefined ? { "idempotency-key": options.idempotencyKey } : {};
    const body = { prompt, ...paramsToWire(params), ...(stream ? { stream: true } : {}) };
    const answer = await this.json("/api/v1/inference", { method: "POST", body, headers, signal: options.signal });
    return submittedFrom(answer.body, answer.status);
  }

  /** The final status pushed on /events/{id}; undefined when the stream broke before it (then poll). */
  private async followEvents(requestId: string, signal: AbortSignal | undefined, onStatus?: (s: RequestState) => void): Promise<RequestStatus | undefined> {
    try {
      const response = await this.send(`/events/${encodeURIComponent(requestId)}`, { signal, headers: { accept: "text/event-stream" } });
      for await (const event of readSse(bodyOf(response))) {
        if (FINAL_STATES.has(event.event)) return statusFrom(JSON.parse(event.data) as Wire);
        if (event.event === "queued" || event.event === "processing") onStatus?.(event.event);
        if (event.event === "error") return undefined;
      }
      return undefined;
    } catch (error) {
      if (signal?.aborted) throw abortedError(signal, error);
      // Refusals are final (polling would be refused the same way); anything else: poll.
      if (error instanceof ClientError && error.code !== "unreachable" && error.status < 500) throw error;
      return undefined;
    }
  }

  private async poll(requestId: string, signal: AbortSignal | undefined, onStatus?: (s: RequestState) => void): Promise<RequestStatus> {
    for (;;) {
      const current = await this.status(requestId, signal ? { signal } : {});
      if (FINAL_STATES.has(current.status)) return current;
      onStatus?.(current.status);
      await sleep(POLL_MS, signal);
    }
  }

  /** One HTTP exchange; a non-2xx answer or a failure to reach the platform becomes a ClientError. */
  private async send(path: string, init: SendInit): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method: init.method ?? "GET",
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : init.form ? { body: init.form } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (cause) {
      if (init.signal?.aborted) throw abortedError(init.signal, cause);
      throw new ClientError("unreachable", `could not reach ${this.baseUrl}: ${describeCause(cause)}`, { cause });
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  /** An answer's body as text (a file's content). */
  private async text(path: string, init: SendInit): Promise<string> {
    return readTextOf(await this.send(path, init), init.signal, this.baseUrl);
  }

  private async json(path: string, init: SendInit): Promise<{ body: Wire; status: number }> {
    const response = await this.send(path, init);
    const text = await readTextOf(response, init.signal, this.baseUrl);
    try {
      return { body: JSON.parse(text) as Wire, status: response.status };
    } catch {
      throw new ClientError("bad_response", `HTTP ${response.status} answer is not JSON`, { status: response.status });
    }
  }
}

async function readTextOf(response: Response, signal: AbortSignal | undefined, baseUrl: string): Promise<string> {
  try {
    return await response.text();
  } catch (cause) {
    if (signal?.aborted) throw abortedError(signal, cause);
    throw new ClientError("unreachable", `the answer from ${baseUrl} could not be read: ${describeCause(cause)}`, { cause });
  }
}

function bodyOf(response: Response): ReadableStream<Uint8Array> {
  if (!response.body) throw new ClientError("bad_response", "the event stream answer has no body", { status: response.status });
  return response.body;
}

function abortedError(signal: AbortSignal, cause: unknown): ClientError {
  return new ClientError("aborted", "the operation was aborted", { cause: signal.reason ?? cause });
}

function asClientError(error: unknown): ClientError {
  if (error instanceof ClientError) return error;
  return new ClientError("unreachable", `the event stream broke: ${describeCause(error)}`, { cause: error });
}

/** undici hides the reason (ECONNREFUSED, ENOTFOUND) in `cause`; the message should name it. */
function describeCause(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError(signal, undefined));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal as AbortSignal, undefined));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

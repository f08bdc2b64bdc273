/**
 * Calls a model server: our ML Service's native `POST /inference`, or any OpenAI-compatible
 * `/v1/completions` / `/v1/chat/completions` (vLLM, llama.cpp's server, Ollama). Sorts failures
 * into transient (retry later) and permanent (the request itself is bad), which is all the worker
 * needs to decide. The streamed call is in ml-stream.ts.
 */
import type { RequestMessage, TokenUsage } from "../../domain/contracts.js";
import { wireToOpenAi } from "../../domain/generation-params.js";
import type { ChatMessage } from "../../engines/types.js";
import { postJson, type KeepAliveAgent, type PostResponse } from "./http-post.js";
import { isErrorCode, type ErrorCode } from "../../errors.js";

export type { ChatMessage };

/**
 * What the worker asks the model server for: the queue message, with chat `messages` when the
 * request is a chat (then they are sent instead of `prompt`, and the server applies the model's
 * chat template).
 */
export type MlRequest = RequestMessage & { messages?: readonly ChatMessage[] };

/** Why a finished generation stopped: a natural end or stop string, or the token limit. */
/** "abort": the ML Service stopped the generation when its caller asked (a whole answer cancelled by id). */
export type GenerationFinish = "stop" | "length" | "abort";

export interface Generation {
  outputText: string;
  outputs: string[] | undefined;
  usage: TokenUsage;
  model: string;
}

export class MlCallError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly transient: boolean,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "MlCallError";
  }
}

export interface MlClientOptions {
  baseUrl: string;
  api: "native" | "openai";
  timeoutMs: number;
  /** Connections kept open between calls; without one, each call opens its own. */
  agent?: KeepAliveAgent;
  /** The ML Service's internal token (ML_SERVICE_TOKEN), sent as a bearer token. */
  token?: string;
  /** Sent with the call as they are: the model call span's traceparent when tracing is on. */
  headers?: Record<string, string>;
}

export async function generate(options: MlClientOptions, message: MlRequest, signal?: AbortSignal): Promise<Generation> {
  return (await generateWithFinish(options, message, signal)).generation;
}

/** `generate()`, with the finish reason the server reported ("stop" when it reported none). */
export async function generateWithFinish(
  options: MlClientOptions,
  message: MlRequest,
  signal?: AbortSignal,
): Promise<{ generation: Generation; finishReason: GenerationFinish }> {
  const { url, body } = options.api === "native" ? nativeRequest(options.baseUrl, message) : openAiRequest(options.baseUrl, message);
  // One controller per call, its timer cleared when the call ends: AbortSignal.timeout() would keep
  // every call's signal alive for the whole timeout (120 s by default), which adds up under load.
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs);
  const onAbort = () => controller.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  let response: PostResponse;
  try {
    try {
      response = await postJson(url, body, mlHeaders(options, message), { signal: controller.signal, agent: options.agent });
    } catch (error) {
      throw transportError(timedOut, options.timeoutMs, error);
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  const text = response.text;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (response.status < 200 || response.status > 299) throw httpError(response.status, text, response.retryAfter);
  const parsed = options.api === "native" ? readNative(json) : readOpenAi(json);
  if (!parsed) throw new MlCallError("ml_bad_response", "model server answered with an unexpected body", true);
  return parsed;
}

/** The headers of every model call: the request id, and the internal token when set. */
export function mlHeaders(options: MlClientOptions, message: RequestMessage): Record<string, string> {
  const headers: Record<string, string> = { ...options.headers, "x-request-id": message.request_id };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return headers;
}

/** A call that got no answer: timed out (our timer), or the server could not be reached or cut the connection. */
export function transportError(timedOut: boolean, timeoutMs: number, cause: unknown): MlCallError {
  return new MlCallError(
    timedOut ? "ml_timeout" : "ml_unreachable",
    // The cause (host, port, errno) is for the logs; the message may reach the user.
    timedOut ? `model server did not answer within ${timeoutMs} ms` : "model server unreachable",
    true,
    undefined,
    cause,
  );
}

/** A non-2xx answer: the model server's own code when it is one of ours; transient for 5xx, 429 and 408. */
export function httpError(status: number, text: string, retryAfterHeader: string | undefined): MlCallError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
  // The model server's own code when it is one of ours (our ML Service); any other server's answer is ml_http_error.
  const code: ErrorCode = isErrorCode(error?.code) ? error.code : "ml_http_error";
  const detail = typeof error?.message === "string" ? error.message : text.slice(0, 200);
  const transient = status >= 500 || status === 429 || status === 408;
  const retryAfter = Number(retryAfterHeader);
  return new MlCallError(code, `model server answered ${status}: ${detail}`, transient, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
}

/**
 * The request's parameters go to the model server as the queue message carries them; only the
 * OpenAI protocol renames two (`max_tokens`, `n`). Exported for the parameter table test.
 */
export function nativeRequest(baseUrl: string, m: MlRequest, stream = false, streamIntervalMs?: number) {
  const input = m.messages ? { messages: m.messages } : { prompt: m.prompt };
  const interval = stream && streamIntervalMs !== undefined ? { stream_interval_ms: streamIntervalMs } : {};
  return { url: new URL("/inference", baseUrl), body: { ...input, model: m.model, ...m.params, stream, ...interval } };
}

/** `/v1/completions` for a prompt, `/v1/chat/completions` for messages. */
export function openAiRequest(baseUrl: string, m: MlRequest) {
  if (m.messages) {
    return { url: new URL("/v1/chat/completions", baseUrl), body: { model: m.model, messages: m.messages, ...wireToOpenAi(m.params) } };
  }
  return { url: new URL("/v1/completions", baseUrl), body: { model: m.model, prompt: m.prompt, ...wireToOpenAi(m.params) } };
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

export function readUsage(raw: unknown): TokenUsage | undefined {
  const u = raw as Record<string, unknown> | undefined;
  if (!u || !isCount(u.prompt_tokens) || !isCount(u.completion_tokens)) return undefined;
  const total = isCount(u.total_tokens) ? u.total_tokens : u.prompt_tokens + u.completion_tokens;
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: total };
}

const finishOf = (raw: unknown): GenerationFinish => (raw === "length" ? "length" : raw === "abort" ? "abort" : "stop");

function readNative(json: unknown): { generation: Generation; finishReason: GenerationFinish } | undefined {
  const j = json as Record<string, unknown> | undefined;
  const usage = readUsage(j?.token_usage);
  if (!j || typeof j.output_text !== "string" || !usage) return undefined;
  const outputs = Array.isArray(j.outputs) && j.outputs.every((o) => typeof o === "string") ? (j.outputs as string[]) : undefined;
  return {
    generation: { outputText: j.output_text, outputs, usage, model: typeof j.model === "string" ? j.model : "unknown" },
    finishReason: finishOf(j.finish_reason),
  };
}

/** A completion's `choices[].text` or a chat completion's `choices[].message.content`. */
function readOpenAi(json: unknown): { generation: Generation; finishReason: GenerationFinish } | undefined {
  type Choice = { text?: unknown; message?: { content?: unknown }; finish_reason?: unknown };
  const j = json as { choices?: Choice[]; usage?: unknown; model?: unknown } | undefined;
  const usage = readUsage(j?.usage);
  const choices = Array.isArray(j?.choices) ? j.choices : [];
  const texts = choices.map((c) => (c && typeof c === "object" ? (c.message !== undefined ? c.message?.content : c.text) : undefined));
  if (!usage || texts.length === 0 || !texts.every((t): t is string => typeof t === "string")) return undefined;
  return {
    generation: {
      outputText: texts[0] as string,
      outputs: texts.length > 1 ? texts : undefined,
      usage,
      model: typeof j?.model === "string" ? j.model : "unknown",
    },
    finishReason: finishOf(choices[0]?.finish_reason),
  };
}

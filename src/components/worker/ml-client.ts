/**
 * Calls a model server: our ML Service's native `POST /inference`, or any OpenAI-compatible
 * `/v1/completions` (vLLM, llama.cpp's server, Ollama). Sorts failures into transient (retry later)
 * and permanent (the request itself is bad), which is all the worker needs to decide.
 */
import type { RequestMessage, TokenUsage } from "../../domain/contracts.js";
import { wireToOpenAi } from "../../domain/generation-params.js";
import { postJson, type KeepAliveAgent, type PostResponse } from "./http-post.js";
import { isErrorCode, type ErrorCode } from "../../errors.js";

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
}

export async function generate(options: MlClientOptions, message: RequestMessage, signal?: AbortSignal): Promise<Generation> {
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
      const headers: Record<string, string> = { "x-request-id": message.request_id };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      response = await postJson(url, body, headers, { signal: controller.signal, agent: options.agent });
    } catch (error) {
      throw new MlCallError(
        timedOut ? "ml_timeout" : "ml_unreachable",
        // The cause (host, port, errno) is for the logs; the message may reach the user.
        timedOut ? `model server did not answer within ${options.timeoutMs} ms` : "model server unreachable",
        true,
        undefined,
        error,
      );
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
  if (response.status < 200 || response.status > 299) {
    const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    // The model server's own code when it is one of ours (our ML Service); any other server's answer is ml_http_error.
    const code: ErrorCode = isErrorCode(error?.code) ? error.code : "ml_http_error";
    const detail = typeof error?.message === "string" ? error.message : text.slice(0, 200);
    const transient = response.status >= 500 || response.status === 429 || response.status === 408;
    const retryAfter = Number(response.retryAfter);
    throw new MlCallError(code, `model server answered ${response.status}: ${detail}`, transient, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
  }
  const parsed = options.api === "native" ? readNative(json) : readOpenAi(json);
  if (!parsed) throw new MlCallError("ml_bad_response", "model server answered with an unexpected body", true);
  return parsed;
}

/**
 * The request's parameters go to the model server as the queue message carries them; only the
 * OpenAI protocol renames two (`max_tokens`, `n`). Exported for the parameter table test.
 */
export function nativeRequest(baseUrl: string, m: RequestMessage) {
  return { url: new URL("/inference", baseUrl), body: { prompt: m.prompt, model: m.model, ...m.params, stream: false } };
}

export function openAiRequest(baseUrl: string, m: RequestMessage) {
  return { url: new URL("/v1/completions", baseUrl), body: { model: m.model, prompt: m.prompt, ...wireToOpenAi(m.params) } };
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

function readUsage(raw: unknown): TokenUsage | undefined {
  const u = raw as Record<string, unknown> | undefined;
  if (!u || !isCount(u.prompt_tokens) || !isCount(u.completion_tokens)) return undefined;
  const total = isCount(u.total_tokens) ? u.total_tokens : u.prompt_tokens + u.completion_tokens;
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: total };
}

function readNative(json: unknown): Generation | undefined {
  const j = json as Record<string, unknown> | undefined;
  const usage = readUsage(j?.token_usage);
  if (!j || typeof j.output_text !== "string" || !usage) return undefined;
  const outputs = Array.isArray(j.outputs) && j.outputs.every((o) => typeof o === "string") ? (j.outputs as string[]) : undefined;
  return { outputText: j.output_text, outputs, usage, model: typeof j.model === "string" ? j.model : "unknown" };
}

function readOpenAi(json: unknown): Generation | undefined {
  const j = json as { choices?: Array<{ text?: unknown }>; usage?: unknown; model?: unknown } | undefined;
  const usage = readUsage(j?.usage);
  const texts = (j?.choices ?? []).map((c) => c.text);
  if (!usage || texts.length === 0 || !texts.every((t): t is string => typeof t === "string")) return undefined;
  return {
    outputText: texts[0] as string,
    outputs: texts.length > 1 ? texts : undefined,
    usage,
    model: typeof j?.model === "string" ? j.model : "unknown",
  };
}

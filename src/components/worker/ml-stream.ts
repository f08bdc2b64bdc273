/**
 * The streamed model call: our ML Service's `POST /inference` with `stream: true`, read as NDJSON
 * while it arrives. Each piece of text goes to `onDelta` at once; every line carries the cumulative
 * counts, so a user's cancel (the caller's `signal`) stops the generation and still settles exactly
 * what was processed up to the last line received. Failures are classified as `generate()`'s.
 *
 * Lines (see src/components/ml-service/native-routes.ts):
 *   {"token":"","is_finished":false,"prompt_tokens":P,"completion_tokens":0}
 *   {"token":"…","is_finished":false,"prompt_tokens":P,"completion_tokens":C}
 *   {"token":"","is_finished":true,"prompt_tokens":P,"completion_tokens":C,"token_usage":{…},"model":…,"finish_reason":…}
 *   {"error":{"code":…,"message":…},"is_finished":true}      (a failure after streaming started)
 */
import { StringDecoder } from "node:string_decoder";
import type { IncomingMessage } from "node:http";
import type { TokenUsage } from "../../domain/contracts.js";
import { ERRORS, isErrorCode, type ErrorCode } from "../../errors.js";
import { postStream, type StreamResponse } from "./http-post.js";
import {
  MlCallError,
  generateWithFinish,
  httpError,
  mlHeaders,
  nativeRequest,
  readUsage,
  transportError,
  type Generation,
  type MlClientOptions,
  type MlRequest,
} from "./ml-client.js";
import { generateWholeCancellable } from "./ml-whole.js";

/** "cancelled": the caller's signal aborted; the text and usage are what had arrived by then. */
export type StreamFinishReason = "stop" | "length" | "cancelled";

export type StreamedGeneration = Generation & { finishReason: StreamFinishReason };

export interface StreamCallbacks {
  /** Each new, non-empty piece of text, in order; their concatenation is the result's outputText. */
  onDelta?: (text: string) => void;
}

/** A line longer than this without a newline is not our ML Service talking. */
const MAX_LINE_CHARS = 1024 * 1024;

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/**
 * Streams one generation. Resolves with the final text and usage, or, when `signal` aborts (a user
 * cancel; the request is destroyed, which stops the generation on the server), with finishReason
 * "cancelled", the deltas received so far and the counts of the last line received (0/0 when none
 * had). Rejects with MlCallError like `generate()`: ml_timeout after `timeoutMs` (for the whole
 * call), ml_unreachable when the server cannot be reached or cuts the stream, the server's own code
 * from an error answer or an error line (an error line is transient when its code is retryable).
 *
 * With `api: "openai"` (any OpenAI-compatible server), or several sequences, there is no stream:
 * it falls back to `generate()` and hands the whole text to `onDelta` once; a cancel then resolves
 * with empty text and zero usage (a non-streamed answer reports nothing before it ends).
 */
export function generateStream(
  options: MlClientOptions,
  message: MlRequest,
  callbacks: StreamCallbacks = {},
  signal?: AbortSignal,
): Promise<StreamedGeneration> {
  if (options.api !== "native" || (message.params.num_return_sequences ?? 1) > 1) return generateWhole(options, message, callbacks, signal);
  // A client that is not streaming gets the whole answer, the ML Service's cheaper call; a cancel
  // then stops it by id and still reads what was processed (ml-whole.ts).
  if (!message.stream) return generateWholeCancellable(options, message, callbacks, signal);
  const { url, body } = nativeRequest(options.baseUrl, message, true);
  const reader = new LineReader(message.model, callbacks);
  if (signal?.aborted) return Promise.resolve(reader.cancelled());

  return new Promise<StreamedGeneration>((resolve, reject) => {
    const controller = new AbortController();
    let settled = false;
    let answer: IncomingMessage | undefined;
    /** `keep`: the answer is over (its last line read), so the connection may serve the next call. */
    const settle = (outcome: () => void, keep = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onCancel);
      if (!keep) {
        // Destroys the request: the server sees the disconnect and stops generating.
        controller.abort();
      } else if (answer && !answer.complete) {
        // Only the end of the chunked body is still to come; should it not, the connection goes.
        const linger = setTimeout(() => controller.abort(), 1_000);
        linger.unref();
        answer.once("close", () => clearTimeout(linger));
      }
      outcome();
    };
    const fail = (error: unknown) => settle(() => reject(error));
    const onCancel = () => settle(() => resolve(reader.cancelled()));
    const timer = setTimeout(() => fail(transportError(true, options.timeoutMs, undefined)), options.timeoutMs);
    signal?.addEventListener("abort", onCancel, { once: true });

    postStream(url, body, mlHeaders(options, message), { signal: controller.signal, agent: options.agent }).then(
      (response) => {
        if (settled) return response.body.destroy();
        answer = response.body;
        if (response.status < 200 || response.status > 299) return readErrorAnswer(response, fail);
        readLines(
          response.body,
          reader,
          () => settled,
          (result) => settle(() => resolve(result), true),
          (error, lastLine) => settle(() => reject(error), lastLine),
        );
      },
      (error: unknown) => fail(transportError(false, options.timeoutMs, error)),
    );
  });
}

/** The state of one stream: the text and counts so far, and what each line changes. */
class LineReader {
  private text = "";
  private promptTokens = 0;
  private completionTokens = 0;

  constructor(
    private readonly model: string,
    private readonly callbacks: StreamCallbacks,
  ) {}

  cancelled(): StreamedGeneration {
    const usage: TokenUsage = {
      prompt_tokens: this.promptTokens,
      completion_tokens: this.completionTokens,
      total_tokens: this.promptTokens + this.completionTokens,
    };
    return { outputText: this.text, outputs: undefined, usage, model: this.model, finishReason: "cancelled" };
  }

  /**
   * Reads one line: the answer's end when it is its last line (the result, or the error it reports),
   * else undefined. Throws MlCallError for a line that is not the protocol's.
   */
  line(raw: string): { result: StreamedGeneration } | { error: MlCallError } | undefined {
    if (raw.trim().length === 0) return undefined;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      throw badLine("a line is not JSON");
    }
    if (!json || typeof json !== "object") throw badLine("a line is not a JSON object");
    if (json.error !== undefined && json.error !== null) return { error: errorLine(json.error) };
    if (isCount(json.prompt_tokens)) this.promptTokens = json.prompt_tokens;
    if (isCount(json.completion_tokens)) this.completionTokens = json.completion_tokens;
    if (json.is_finished === true) {
      // The last line carries the text not sent before it (none from a server that sends it all earlier).
      if (typeof json.token === "string" && json.token.length > 0) this.addText(json.token);
      const usage = readUsage(json.token_usage);
      if (!usage) throw badLine("the last line has no token_usage");
      if (json.finish_reason === "abort") {
        // Our ML Service says so with an error line; this is for one that ends an aborted generation normally.
        throw new MlCallError("service_unavailable", "the model server stopped the generation before its end", true);
      }
      const result: StreamedGeneration = {
        outputText: this.text,
        outputs: undefined,
        usage,
        model: typeof json.model === "string" ? json.model : this.model,
        finishReason: json.finish_reason === "length" ? "length" : "stop",
      };
      return { result };
    }
    if (typeof json.token !== "string") throw badLine("a line has no token");
    if (json.token.length > 0) this.addText(json.token);
    return undefined;
  }

  private addText(text: string): void {
    this.text += text;
    this.callbacks.onDelta?.(text);
  }
}

const badLine = (what: string) => new MlCallError("ml_bad_response", `model server streamed an unexpected body: ${what}`, true);

/** An error line: the server's own code (transient when retryable), or ml_http_error (permanent) for a code we do not know. */
function errorLine(raw: unknown): MlCallError {
  const error = raw as { code?: unknown; message?: unknown };
  const code: ErrorCode = isErrorCode(error?.code) ? error.code : "ml_http_error";
  const detail = typeof error?.message === "string" ? error.message : "no message";
  return new MlCallError(code, `model server failed mid-stream: ${detail}`, ERRORS[code].retryable);
}

/** Reads the body line by line; bytes and lines may be split anywhere across chunks. */
function readLines(
  body: IncomingMessage,
  reader: LineReader,
  settled: () => boolean,
  done: (result: StreamedGeneration) => void,
  /** `lastLine`: the failure is the answer's own last line (an error line). */
  fail: (error: unknown, lastLine?: boolean) => void,
): void {
  const decoder = new StringDecoder("utf8");
  let buffer = "";
  const consume = (text: string, last: boolean) => {
    buffer += text;
    let start = 0;
    for (let nl = buffer.indexOf("\n"); ; nl = buffer.indexOf("\n", start)) {
      if (settled()) return; // a cancel from onDelta, or a failure: the rest is not read
      if (nl === -1) {
        if (!last) break;
        nl = buffer.length;
      }
      const raw = buffer.slice(start, nl);
      start = nl + 1;
      let end: ReturnType<LineReader["line"]>;
      try {
        end = reader.line(raw);
      } catch (error) {
        fail(error);
        return;
      }
      if (end) {
        if ("result" in end) done(end.result);
        else fail(end.error, true);
        return;
      }
      if (start > buffer.length) break;
    }
    buffer = buffer.slice(start);
    if (buffer.length > MAX_LINE_CHARS) fail(badLine("a line is too long"));
  };
  body.on("data", (chunk: Buffer) => {
    if (!settled()) consume(decoder.write(chunk), false);
  });
  body.once("end", () => {
    if (settled()) return;
    consume(decoder.end(), true);
    if (!settled()) fail(badLine("the stream ended without its last line"));
  });
  body.once("close", () => {
    if (!body.complete) fail(transportError(false, 0, new Error("the connection closed before the stream ended")));
  });
}

/** A non-2xx answer (before any streaming): read whole, classified as generate() does. */
function readErrorAnswer(response: StreamResponse, fail: (error: unknown) => void): void {
  const chunks: Buffer[] = [];
  response.body.on("data", (chunk: Buffer) => chunks.push(chunk));
  response.body.once("end", () => fail(httpError(response.status, Buffer.concat(chunks).toString("utf8"), response.retryAfter)));
  response.body.once("close", () => {
    if (!response.body.complete) fail(transportError(false, 0, new Error("the connection closed before the answer ended")));
  });
}

/** No stream: the whole answer at once, handed to onDelta as one piece. */
async function generateWhole(
  options: MlClientOptions,
  message: MlRequest,
  callbacks: StreamCallbacks,
  signal?: AbortSignal,
): Promise<StreamedGeneration> {
  const cancelled = (): StreamedGeneration => ({
    outputText: "",
    outputs: undefined,
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    model: message.model,
    finishReason: "cancelled",
  });
  if (signal?.aborted) return cancelled();
  try {
    const { generation, finishReason } = await generateWithFinish(options, message, signal);
    if (generation.outputText.length > 0) callbacks.onDelta?.(generation.outputText);
    return { ...generation, finishReason: finishReason === "abort" ? "cancelled" : finishReason };
  } catch (error) {
    if (signal?.aborted) return cancelled();
    throw error;
  }
}

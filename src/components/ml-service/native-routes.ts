/**
 * `POST /inference`: the first version's contract, from `prompt` or chat `messages`, answered as
 * JSON, or as NDJSON with `stream: true`. Every NDJSON line carries the cumulative counts, so a
 * caller that stops reading knows exactly what was processed up to its last line:
 *   {"token":"","is_finished":false,"prompt_tokens":P,"completion_tokens":0}      once the generation has its sequence
 *   {"token":"…","is_finished":false,"prompt_tokens":P,"completion_tokens":C}     per piece of text (C cumulative)
 *   {"token":"…","is_finished":true,"prompt_tokens":P,"completion_tokens":C,"token_usage":{…},"model":…,"processing_time":…,"finish_reason":…}
 * or, once streaming has started, a last line {"error":{"code","message"},"is_finished":true}.
 * A whole answer can be stopped by its caller with `POST /inference/{x-request-id}/cancel`
 * (cancels.ts): it then ends with finish_reason "abort" and the tokens processed until then.
 * The last line carries the text not sent yet. With `stream_interval_ms`, every line (the first
 * too) gathers what that long brings: a caller that only needs progress for the counts (the worker,
 * for a client that is not streaming) gets a short generation as that one last line, in one write.
 */
import type { FastifyInstance } from "fastify";
import { AppError } from "../../errors.js";
import { generationRequests } from "../../engines/sampling.js";
import type { GenerationProgress, GenerationResult } from "../../engines/types.js";
import { inferenceBodySchema, inferenceInput, parseBody } from "./schemas.js";
import type { Serving } from "./serving.js";
import { usageOf } from "./serving.js";
import { disconnectSignal, endWithError, LazyStream } from "./stream.js";
import { CancellableCalls } from "./cancels.js";

/**
 * The lines of one streamed answer: the first at once (it carries the prompt's token count), the
 * first text at once, then the text generated within `flushMs` of the last line gathered into one
 * line with the latest counts. A line per token costs its reader (the worker) a parse and every reader after it an
 * event; a line per few tokens costs a reader at most `flushMs` of delay.
 */
class ProgressLines {
  private text = "";
  private latest: GenerationProgress | undefined;
  private sentCompletion = -1;
  private lastSent: number;
  private textSent = false;
  private timer: NodeJS.Timeout | undefined;

  /** `firstAtOnce`: the first line and the first text are not held (a streaming reader's first token). */
  constructor(
    private readonly write: (line: string) => void,
    private readonly flushMs: number,
    private readonly firstAtOnce: boolean,
  ) {
    this.lastSent = firstAtOnce ? -Infinity : performance.now();
  }

  push(p: GenerationProgress): void {
    this.text += p.text;
    this.latest = p;
    if (this.timer) return;
    const wait = this.textSent || !this.firstAtOnce ? this.lastSent + this.flushMs - performance.now() : 0;
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** The text not sent yet, for the last line; nothing is sent after it. */
  takeRest(): string {
    clearTimeout(this.timer);
    this.timer = undefined;
    const rest = this.text;
    this.text = "";
    return rest;
  }

  /** Sends what is gathered (a line for counts that moved without text too). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.latest;
    if (!p || (this.text.length === 0 && this.sentCompletion === p.completionTokens)) return;
    this.write(`${JSON.stringify({ token: this.text, is_finished: false, prompt_tokens: p.promptTokens, completion_tokens: p.completionTokens })}\n`);
    if (this.text.length > 0) this.textSent = true;
    this.text = "";
    this.sentCompletion = p.completionTokens;
    this.lastSent = performance.now();
  }
}

export function registerNativeRoutes(app: FastifyInstance, serving: Serving, maxTokensLimit: number, streamFlushMs = 0): void {
  const schema = inferenceBodySchema(maxTokensLimit);
  const cancellable = new CancellableCalls();

  // Stops a whole call by its x-request-id; its answer then comes back with what was processed.
  app.post<{ Params: { id: string } }>("/inference/:id/cancel", async (request) => ({ cancelled: cancellable.cancel(request.params.id) }));

  app.post("/inference", async (request, reply) => {
    const body = parseBody(schema, request.body);
    serving.checkModel(body.model);
    serving.ensureServing();
    const n = body.params.numReturnSequences;
    if (body.stream && n > 1) {
      throw new AppError("invalid_parameter", "num_return_sequences: streaming returns one sequence; use 1 with stream: true", {
        details: { field: "num_return_sequences" },
      });
    }
    const requests = generationRequests(body.params, inferenceInput(body));
    const signal = disconnectSignal(reply);
    const model = serving.modelName();
    if (!body.stream) {
      const header = request.headers["x-request-id"];
      const call = cancellable.track(typeof header === "string" ? header : undefined, signal);
      const { results, elapsed } = await serving.generateAll(requests, call.signal).finally(call.done);
      const first = results[0] as GenerationResult;
      return {
        output_text: first.text,
        ...(results.length > 1 ? { outputs: results.map((r) => r.text) } : {}),
        token_usage: usageOf(results, n),
        model,
        processing_time: elapsed,
        finish_reason: first.finishReason,
        ...(first.truncated ? { prompt_truncated: true } : {}),
      };
    }
    const stream = new LazyStream(reply, "application/x-ndjson; charset=utf-8");
    const line = (record: Record<string, unknown>) => `${JSON.stringify(record)}\n`;
    const interval = body.streamIntervalMs;
    const progress = new ProgressLines((text) => stream.write(text), interval ?? streamFlushMs, interval === undefined);
    try {
      const { results, elapsed } = await serving.generateAll(requests, signal, undefined, (_i, p) => progress.push(p));
      const first = results[0] as GenerationResult;
      if (first.finishReason === "abort" && !signal.aborted) {
        // Aborted by the service itself (it is stopping), not by this caller: the text is cut short.
        throw new AppError("service_unavailable", "the model service stopped this generation while shutting down", { retryAfterSeconds: 5 });
      }
      const usage = usageOf(results, n);
      stream.end(
        line({
          token: progress.takeRest(),
          is_finished: true,
          prompt_tokens: usage.prompt_tokens,
          completion_tokens: usage.completion_tokens,
          token_usage: usage,
          model,
          processing_time: elapsed,
          finish_reason: first.finishReason,
        }),
      );
    } catch (error) {
      progress.flush();
      endWithError(stream, error, (body) => line({ ...body, is_finished: true }));
    }
    return reply;
  });
}

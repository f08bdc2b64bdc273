/**
 * `POST /inference`: the first version's contract, from `prompt` or chat `messages`, answered as
 * JSON, or as NDJSON with `stream: true`. Every NDJSON line carries the cumulative counts, so a
 * caller that stops reading knows exactly what was processed up to its last line:
 *   {"token":"","is_finished":false,"prompt_tokens":P,"completion_tokens":0}      once the generation has its sequence
 *   {"token":"…","is_finished":false,"prompt_tokens":P,"completion_tokens":C}     per piece of text (C cumulative)
 *   {"token":"","is_finished":true,"prompt_tokens":P,"completion_tokens":C,"token_usage":{…},"model":…,"processing_time":…,"finish_reason":…}
 * or, once streaming has started, a last line {"error":{"code","message"},"is_finished":true}.
 */
import type { FastifyInstance } from "fastify";
import { AppError } from "../../errors.js";
import { generationRequests } from "../../engines/sampling.js";
import type { GenerationProgress, GenerationResult } from "../../engines/types.js";
import { inferenceBodySchema, inferenceInput, parseBody } from "./schemas.js";
import type { Serving } from "./serving.js";
import { usageOf } from "./serving.js";
import { disconnectSignal, endWithError, LazyStream } from "./stream.js";

export function registerNativeRoutes(app: FastifyInstance, serving: Serving, maxTokensLimit: number): void {
  const schema = inferenceBodySchema(maxTokensLimit);

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
      const { results, elapsed } = await serving.generateAll(requests, signal);
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
    try {
      let sent: GenerationProgress | undefined;
      const { results, elapsed } = await serving.generateAll(requests, signal, undefined, (_i, p) => {
        // A line per piece of text, and one for counts that moved without text (the first line included).
        if (p.text.length === 0 && sent && sent.completionTokens === p.completionTokens) return;
        sent = p;
        stream.write(line({ token: p.text, is_finished: false, prompt_tokens: p.promptTokens, completion_tokens: p.completionTokens }));
      });
      const first = results[0] as GenerationResult;
      if (first.finishReason === "abort" && !signal.aborted) {
        // Aborted by the service itself (it is stopping), not by this caller: the text is cut short.
        throw new AppError("service_unavailable", "the model service stopped this generation while shutting down", { retryAfterSeconds: 5 });
      }
      const usage = usageOf(results, n);
      stream.end(
        line({
          token: "",
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
      endWithError(stream, error, (body) => line({ ...body, is_finished: true }));
    }
    return reply;
  });
}

/** `POST /inference`: the first version's contract, answered as JSON, or as NDJSON with `stream: true`. */
import type { FastifyInstance } from "fastify";
import { AppError } from "../../errors.js";
import { generationRequests } from "../../engines/sampling.js";
import type { GenerationResult } from "../../engines/types.js";
import { inferenceBodySchema, parseBody } from "./schemas.js";
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
    const requests = generationRequests(body.params, { prompt: body.prompt });
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
    try {
      const { results, elapsed } = await serving.generateAll(requests, signal, (_i, token) => {
        if (token.length > 0) stream.write(`${JSON.stringify({ token, is_finished: false })}\n`);
      });
      const first = results[0] as GenerationResult;
      stream.end(
        `${JSON.stringify({
          token: "",
          is_finished: true,
          token_usage: usageOf(results, n),
          model,
          processing_time: elapsed,
          finish_reason: first.finishReason,
        })}\n`,
      );
    } catch (error) {
      endWithError(stream, error, (body) => `${JSON.stringify({ ...body, is_finished: true })}\n`);
    }
    return reply;
  });
}

/**
 * The OpenAI-compatible routes: `POST /v1/completions`, `POST /v1/chat/completions` (SSE when
 * streaming, `usage` in every answer) and `GET /v1/models`.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { generationRequests } from "../../engines/sampling.js";
import type { GenerationRequest, GenerationResult } from "../../engines/types.js";
import { chatBodySchema, chatMessages, completionBodySchema, openAiParams, openAiPenalties, parseBody } from "./schemas.js";
import { usageOf, type Serving } from "./serving.js";
import { disconnectSignal, endWithError, sse, sseStream } from "./stream.js";

/** OpenAI's default max_tokens for /v1/completions. */
const OPENAI_COMPLETION_DEFAULT_MAX_TOKENS = 16;

const finish = (r: GenerationResult) => (r.finishReason === "length" ? "length" : "stop");

export function registerOpenAiRoutes(app: FastifyInstance, serving: Serving, maxTokensLimit: number): void {
  const completionSchema = completionBodySchema(maxTokensLimit);
  const chatSchema = chatBodySchema(maxTokensLimit);

  app.get("/v1/models", async () => {
    const info = serving.engine.info();
    return {
      object: "list",
      data: [{ id: info.model, object: "model", created: 0, owned_by: "ml-inference", meta: { demo: info.demo, context_size: info.contextSize } }],
    };
  });

  app.post("/v1/completions", async (request, reply) => {
    const body = parseBody(completionSchema, request.body);
    serving.checkModel(body.model);
    serving.ensureServing();
    const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
    const params = openAiParams(body, OPENAI_COMPLETION_DEFAULT_MAX_TOKENS);
    const n = params.numReturnSequences;
    // Choice index = prompt index * n + i, as OpenAI numbers them.
    const requests: GenerationRequest[] = prompts.flatMap((prompt) => generationRequests(params, { prompt }, openAiPenalties(body)));
    const signal = disconnectSignal(reply);
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = serving.modelName();
    const echo = (index: number) => (body.echo ? (prompts[Math.floor(index / n)] ?? "") : "");
    if (!body.stream) {
      const { results } = await serving.generateAll(requests, signal);
      return {
        id,
        object: "text_completion",
        created,
        model,
        choices: results.map((r, index) => ({ text: echo(index) + r.text, index, logprobs: null, finish_reason: finish(r) })),
        usage: usageOf(results, n),
      };
    }
    const stream = sseStream(reply);
    const chunk = (index: number, text: string, finish_reason: string | null) =>
      sse({ id, object: "text_completion", created, model, choices: [{ text, index, logprobs: null, finish_reason }] });
    try {
      if (body.echo) requests.forEach((_, i) => stream.write(chunk(i, echo(i), null)));
      const { results } = await serving.generateAll(requests, signal, (i, text) => {
        if (text.length > 0) stream.write(chunk(i, text, null));
      });
      results.forEach((r, i) => stream.write(chunk(i, "", finish(r))));
      if (body.stream_options?.include_usage) {
        stream.write(sse({ id, object: "text_completion", created, model, choices: [], usage: usageOf(results, n) }));
      }
      stream.end("data: [DONE]\n\n");
    } catch (error) {
      endWithError(stream, error, sse);
    }
    return reply;
  });

  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(chatSchema, request.body);
    serving.checkModel(body.model);
    serving.ensureServing();
    const params = openAiParams(body, maxTokensLimit);
    const n = params.numReturnSequences;
    const requests = generationRequests(params, { messages: chatMessages(body) }, openAiPenalties(body));
    const signal = disconnectSignal(reply);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = serving.modelName();
    if (!body.stream) {
      const { results } = await serving.generateAll(requests, signal);
      return {
        id,
        object: "chat.completion",
        created,
        model,
        choices: results.map((r, index) => ({
          index,
          message: { role: "assistant", content: r.text },
          logprobs: null,
          finish_reason: finish(r),
        })),
        usage: usageOf(results, n),
      };
    }
    const stream = sseStream(reply);
    const chunk = (index: number, delta: Record<string, string>, finish_reason: string | null) =>
      sse({ id, object: "chat.completion.chunk", created, model, choices: [{ index, delta, logprobs: null, finish_reason }] });
    const roleSent = new Set<number>();
    const ensureRole = (i: number) => {
      if (!roleSent.has(i)) {
        roleSent.add(i);
        stream.write(chunk(i, { role: "assistant", content: "" }, null));
      }
    };
    try {
      const { results } = await serving.generateAll(requests, signal, (i, text) => {
        if (text.length === 0) return;
        ensureRole(i);
        stream.write(chunk(i, { content: text }, null));
      });
      results.forEach((r, i) => {
        ensureRole(i);
        stream.write(chunk(i, {}, finish(r)));
      });
      if (body.stream_options?.include_usage) {
        stream.write(sse({ id, object: "chat.completion.chunk", created, model, choices: [], usage: usageOf(results, n) }));
      }
      stream.end("data: [DONE]\n\n");
    } catch (error) {
      endWithError(stream, error, sse);
    }
    return reply;
  });
}

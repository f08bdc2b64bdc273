/**
 * ML Service: runs the model in process and serves it over HTTP.
 *  - `POST /inference`            the first version's contract (JSON, or NDJSON with stream: true)
 *  - `POST /v1/completions`       OpenAI-compatible (SSE streaming, `usage`)
 *  - `POST /v1/chat/completions`  OpenAI-compatible, formatted with the model's chat template
 *  - `GET /v1/models`, `GET /health` (readiness), `GET /livez` (liveness), `GET /metrics`
 * Errors are always `{"error":{"code","message"}}`; 400 for bad input, 503 + Retry-After for a full
 * wait queue or a model still loading; a client that disconnects aborts its generation.
 */
import { randomUUID } from "node:crypto";
import { basename } from "node:path";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { MlServiceConfig } from "../../config.js";
import { AppError, isAppError } from "../../errors.js";
import { createLlamaCppEngine } from "../../engines/llama-cpp.js";
import type { Engine, GenerationRequest, GenerationResult, SamplingParams } from "../../engines/types.js";
import { createRegistry, renderMetrics, Counter, Gauge, Histogram } from "../../observability/metrics.js";
import {
  chatBodySchema,
  chatMessages,
  completionBodySchema,
  inferenceBodySchema,
  inferenceSampling,
  openAiSampling,
  parseBody,
} from "./schemas.js";

export interface MlServiceDeps {
  logger: Logger;
  registry?: Registry;
  engine?: Engine;
}

/** How long stop() lets running generations finish before aborting them. */
const DRAIN_TIMEOUT_MS = 10_000;
const BODY_LIMIT_BYTES = 1024 * 1024;
/** OpenAI's default max_tokens for /v1/completions. */
const OPENAI_COMPLETION_DEFAULT_MAX_TOKENS = 16;

const DEMO_WARNING =
  "demo model: generated with deterministic random weights so the service always starts offline; its output is not meaningful. Set MODEL to a GGUF file or hf: reference.";

interface MlMetrics {
  requests: Counter<"model">;
  tokens: Counter<"type" | "model">;
  seconds: Histogram<"model">;
  errors: Counter<"model" | "code">;
  aborted: Counter<"model">;
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

function createMetrics(registry: Registry, engine: Engine): MlMetrics {
  const registers = [registry];
  // Gauges read from the engine when Prometheus scrapes, so they are never stale.
  const sampled = (name: string, help: string, read: () => number) =>
    metric(registry, name, () =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      }),
    );
  sampled("ml_requests_running", "Generation requests holding a context sequence now", () => engine.stats().running);
  sampled("ml_requests_waiting", "Generation requests waiting for a free sequence", () => engine.stats().waiting);
  sampled("ml_model_loaded", "1 once the model is loaded and serving", () => (engine.loaded ? 1 : 0));
  return {
    requests: metric(registry, "ml_requests_total", () =>
      new Counter({ name: "ml_requests_total", help: "Generation requests received", labelNames: ["model"], registers }),
    ),
    tokens: metric(registry, "ml_tokens_processed_total", () =>
      new Counter({
        name: "ml_tokens_processed_total",
        help: "Tokens processed, by type (prompt | completion)",
        labelNames: ["type", "model"],
        registers,
      }),
    ),
    seconds: metric(registry, "ml_processing_seconds", () =>
      new Histogram({
        name: "ml_processing_seconds",
        help: "Time to answer a generation request (queue wait included)",
        labelNames: ["model"],
        buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
        registers,
      }),
    ),
    errors: metric(registry, "ml_request_errors_total", () =>
      new Counter({ name: "ml_request_errors_total", help: "Requests refused or failed, by error code", labelNames: ["model", "code"], registers }),
    ),
    aborted: metric(registry, "ml_requests_aborted_total", () =>
      new Counter({ name: "ml_requests_aborted_total", help: "Generations stopped because the client went away", labelNames: ["model"], registers }),
    ),
  };
}

/** Aborts when the client goes away before the answer is complete. */
function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client disconnected"));
  });
  return controller.signal;
}

/** Starts a streamed answer on first use, so errors raised before any output still get a proper status. */
/**
 * A failure before any output is an ordinary error answer (thrown on); after output has started,
 * the status is already sent, so the stream ends with an error record in its own format.
 */
function endWithError(stream: LazyStream, error: unknown, format: (body: ReturnType<AppError["toJSON"]>) => string): void {
  if (!stream.started) throw error;
  const appError = isAppError(error) ? error : new AppError("generation_failed", "generation failed");
  stream.end(format(appError.toJSON()));
}

class LazyStream {
  started = false;
  constructor(
    private readonly reply: FastifyReply,
    private readonly contentType: string,
  ) {}
  write(chunk: string): void {
    if (!this.started) {
      this.started = true;
      this.reply.hijack();
      this.reply.raw.writeHead(200, {
        "content-type": this.contentType,
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
        connection: "keep-alive",
      });
    }
    if (!this.reply.raw.destroyed) this.reply.raw.write(chunk);
  }
  end(chunk?: string): void {
    if (chunk !== undefined) this.write(chunk);
    if (!this.reply.raw.destroyed) this.reply.raw.end();
  }
}

const seconds = (start: number) => Math.round((performance.now() - start) / 1000 * 1e6) / 1e6;

export async function buildMlServiceApp(
  config: MlServiceConfig,
  deps: MlServiceDeps,
): Promise<{ app: FastifyInstance; engine: Engine; ready: Promise<void> }> {
  const logger = deps.logger.child({ component: "ml-service" });
  const registry = deps.registry ?? createRegistry({ defaultMetrics: true, component: "ml-service" });
  const ownEngine = deps.engine === undefined;
  const engine = deps.engine ?? createLlamaCppEngine({ ...config, logger });
  const metrics = createMetrics(registry, engine);
  let loadError: AppError | undefined;
  let stopping = false;

  const ready = engine.load().then(
    () => {
      const info = engine.info();
      logger.info(
        { model: info.model, source: info.source, device: info.device, load_seconds: info.loadSeconds, sequences: info.sequences, threads: info.threads, context_size: info.contextSize },
        "model loaded",
      );
      if (info.demo) logger.warn({ model: info.model, source: info.source }, DEMO_WARNING);
    },
    (error: unknown) => {
      loadError = isAppError(error) ? error : new AppError("model_not_found", `model failed to load: ${(error as Error).message}`);
      logger.error({ err: error }, "model failed to load");
      throw loadError;
    },
  );
  ready.catch(() => undefined);

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, return503OnClosing: true });
  // JSON only: a text/plain body is refused with 415 instead of being parsed as a string.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((error: FastifyError | AppError | Error, request, reply) => {
    let appError: AppError;
    if (isAppError(error)) appError = error;
    else {
      const status = (error as FastifyError).statusCode ?? 500;
      const code = (error as FastifyError).code;
      if (status === 415) appError = new AppError("unsupported_media_type", "send the body as application/json");
      else if (status === 413) appError = new AppError("payload_too_large", `the body exceeds ${BODY_LIMIT_BYTES} bytes`);
      else if (code === "FST_ERR_CTP_EMPTY_JSON_BODY") appError = new AppError("invalid_body", "the request body is empty");
      else if (status === 400 && (error instanceof SyntaxError || code === "FST_ERR_CTP_INVALID_JSON_BODY" || /JSON/i.test(error.message)))
        appError = new AppError("invalid_json", "the body is not valid JSON");
      else if (status >= 400 && status < 500) appError = new AppError("invalid_body", error.message);
      else {
        logger.error({ err: error, url: request.url }, "unexpected error");
        appError = new AppError("internal_error", "internal error");
      }
    }
    if (appError.status >= 500 && appError.code !== "internal_error") logger.warn({ code: appError.code, msg: appError.message, url: request.url }, "request refused");
    metrics.errors.inc({ model: engine.info().model, code: appError.code });
    if (appError.retryAfterSeconds !== undefined) void reply.header("retry-after", String(appError.retryAfterSeconds));
    return reply.status(appError.status).send(appError.toJSON());
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(new AppError("not_found", `no route ${request.method} ${request.url}`).toJSON()),
  );

  const modelName = () => engine.info().model;
  const ensureServing = () => {
    if (stopping) throw new AppError("service_unavailable", "the model service is shutting down", { retryAfterSeconds: 5 });
    if (loadError) throw new AppError("model_not_ready", `the model failed to load: ${loadError.message}`, { retryAfterSeconds: 30 });
    if (!engine.loaded) throw new AppError("model_not_ready", "the model is still loading; retry shortly", { retryAfterSeconds: 2 });
  };
  const checkModel = (requested: string | undefined) => {
    if (requested === undefined) return;
    const info = engine.info();
    const names = new Set([info.model, "default", ...(info.source ? [basename(info.source), basename(info.source).replace(/\.gguf$/i, "")] : [])]);
    if (!names.has(requested)) {
      throw new AppError("model_not_found", `model "${requested}" is not served here; this service serves "${info.model}"`, {
        details: { available: [info.model] },
      });
    }
  };

  /** Runs one or more generations for one HTTP request, with metrics; `onText(index, text)` streams. */
  async function generateAll(
    requests: GenerationRequest[],
    signal: AbortSignal,
    onText?: (index: number, text: string) => void,
  ): Promise<{ results: GenerationResult[]; elapsed: number }> {
    const start = performance.now();
    const model = modelName();
    metrics.requests.inc({ model });
    // One failed generation (say, queue_full for the 73rd of 80) stops its siblings: nobody would
    // read them, and they would hold sequences every other client is waiting for.
    const siblings = new AbortController();
    const onAbort = () => siblings.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    try {
      const results = await Promise.all(
        requests.map((r, i) =>
          engine.generate(r, { signal: siblings.signal, ...(onText ? { onText: (t: string) => onText(i, t) } : {}) }),
        ),
      ).catch((error: unknown) => {
        siblings.abort(error);
        throw error;
      });
      for (const r of results) {
        metrics.tokens.inc({ type: "prompt", model }, r.promptTokens);
        metrics.tokens.inc({ type: "completion", model }, r.completionTokens);
      }
      if (signal.aborted) metrics.aborted.inc({ model });
      return { results, elapsed: seconds(start) };
    } finally {
      signal.removeEventListener("abort", onAbort);
      metrics.seconds.observe({ model }, (performance.now() - start) / 1000);
    }
  }

  const withSeed = (s: SamplingParams, i: number): SamplingParams =>
    s.seed !== undefined ? { ...s, seed: (s.seed + i) >>> 0 } : s;
  const usageOf = (results: GenerationResult[], promptCount = 1) => {
    // The prompt is counted once per distinct prompt (as OpenAI does), completions summed.
    const prompt = results.slice(0, promptCount).reduce((a, r) => a + r.promptTokens, 0);
    const completion = results.reduce((a, r) => a + r.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  };

  app.get("/livez", async () => ({ status: "ok" }));

  app.get("/health", async (_request, reply) => {
    const info = engine.info();
    const stats = engine.stats();
    const body = {
      model: info.model,
      device: info.device,
      engine: info.engine,
      demo_model: info.demo,
      ...(info.demo ? { warning: DEMO_WARNING } : {}),
      busy: stats.running > 0,
      running: stats.running,
      queue: stats.waiting,
      capacity: stats.capacity,
      queue_limit: stats.queueLimit,
      context_size: info.contextSize,
      threads: info.threads,
      load_seconds: info.loadSeconds,
    };
    if (engine.loaded && !stopping) return { status: "ok", loaded: true, ...body };
    void reply.header("retry-after", "2");
    return reply.status(503).send({
      status: stopping ? "stopping" : loadError ? "failed" : "loading",
      loaded: false,
      ...(loadError ? { error: loadError.toJSON().error } : {}),
      ...body,
    });
  });

  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await renderMetrics([registry]);
    return reply.header("content-type", contentType).send(body);
  });

  app.get("/v1/models", async () => {
    const info = engine.info();
    return {
      object: "list",
      data: [{ id: info.model, object: "model", created: 0, owned_by: "ml-inference", meta: { demo: info.demo, context_size: info.contextSize } }],
    };
  });

  app.post("/inference", async (request: FastifyRequest, reply: FastifyReply) => {
    const body = parseBody(inferenceBodySchema(config.maxTokensLimit), request.body);
    checkModel(body.model);
    ensureServing();
    if (body.stream && body.num_return_sequences > 1) {
      throw new AppError("invalid_parameter", "num_return_sequences: streaming returns one sequence; use 1 with stream: true", {
        details: { field: "num_return_sequences" },
      });
    }
    const sampling = inferenceSampling(body);
    const requests = Array.from({ length: body.num_return_sequences }, (_, i) => ({ ...withSeed(sampling, i), input: { prompt: body.prompt } }));
    const signal = disconnectSignal(reply);
    const model = modelName();
    if (!body.stream) {
      const { results, elapsed } = await generateAll(requests, signal);
      const first = results[0] as GenerationResult;
      return {
        output_text: first.text,
        ...(results.length > 1 ? { outputs: results.map((r) => r.text) } : {}),
        token_usage: usageOf(results),
        model,
        processing_time: elapsed,
        finish_reason: first.finishReason,
        ...(first.truncated ? { prompt_truncated: true } : {}),
      };
    }
    const stream = new LazyStream(reply, "application/x-ndjson; charset=utf-8");
    try {
      const { results, elapsed } = await generateAll(requests, signal, (_i, token) => {
        if (token.length > 0) stream.write(`${JSON.stringify({ token, is_finished: false })}\n`);
      });
      const first = results[0] as GenerationResult;
      stream.end(
        `${JSON.stringify({
          token: "",
          is_finished: true,
          token_usage: usageOf(results),
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

  const sseStream = (reply: FastifyReply) => new LazyStream(reply, "text/event-stream; charset=utf-8");
  const sse = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
  const finish = (r: GenerationResult) => (r.finishReason === "length" ? "length" : "stop");

  app.post("/v1/completions", async (request, reply) => {
    const body = parseBody(completionBodySchema(config.maxTokensLimit), request.body);
    checkModel(body.model);
    ensureServing();
    const prompts = typeof body.prompt === "string" ? [body.prompt] : body.prompt;
    const n = body.n ?? 1;
    const sampling = openAiSampling(body, OPENAI_COMPLETION_DEFAULT_MAX_TOKENS);
    // Choice index = prompt index * n + i, as OpenAI numbers them.
    const requests: GenerationRequest[] = [];
    for (const prompt of prompts) for (let i = 0; i < n; i++) requests.push({ ...withSeed(sampling, i), input: { prompt } });
    const signal = disconnectSignal(reply);
    const id = `cmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = modelName();
    const echo = (index: number) => (body.echo ? (prompts[Math.floor(index / n)] ?? "") : "");
    const promptCountFor = (results: GenerationResult[]) => {
      const prompt = results.filter((_, i) => i % n === 0).reduce((a, r) => a + r.promptTokens, 0);
      const completion = results.reduce((a, r) => a + r.completionTokens, 0);
      return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    };
    if (!body.stream) {
      const { results } = await generateAll(requests, signal);
      return {
        id,
        object: "text_completion",
        created,
        model,
        choices: results.map((r, index) => ({ text: echo(index) + r.text, index, logprobs: null, finish_reason: finish(r) })),
        usage: promptCountFor(results),
      };
    }
    const stream = sseStream(reply);
    const chunk = (index: number, text: string, finish_reason: string | null) =>
      sse({ id, object: "text_completion", created, model, choices: [{ text, index, logprobs: null, finish_reason }] });
    try {
      if (body.echo) requests.forEach((_, i) => stream.write(chunk(i, echo(i), null)));
      const { results } = await generateAll(requests, signal, (i, text) => {
        if (text.length > 0) stream.write(chunk(i, text, null));
      });
      results.forEach((r, i) => stream.write(chunk(i, "", finish(r))));
      if (body.stream_options?.include_usage) {
        stream.write(sse({ id, object: "text_completion", created, model, choices: [], usage: promptCountFor(results) }));
      }
      stream.end("data: [DONE]\n\n");
    } catch (error) {
      endWithError(stream, error, sse);
    }
    return reply;
  });

  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(chatBodySchema(config.maxTokensLimit), request.body);
    checkModel(body.model);
    ensureServing();
    const n = body.n ?? 1;
    const sampling = openAiSampling(body, config.maxTokensLimit);
    const messages = chatMessages(body);
    const requests: GenerationRequest[] = Array.from({ length: n }, (_, i) => ({ ...withSeed(sampling, i), input: { messages } }));
    const signal = disconnectSignal(reply);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = modelName();
    if (!body.stream) {
      const { results } = await generateAll(requests, signal);
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
        usage: usageOf(results),
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
      const { results } = await generateAll(requests, signal, (i, text) => {
        if (text.length === 0) return;
        ensureRole(i);
        stream.write(chunk(i, { content: text }, null));
      });
      results.forEach((r, i) => {
        ensureRole(i);
        stream.write(chunk(i, {}, finish(r)));
      });
      if (body.stream_options?.include_usage) {
        stream.write(sse({ id, object: "chat.completion.chunk", created, model, choices: [], usage: usageOf(results) }));
      }
      stream.end("data: [DONE]\n\n");
    } catch (error) {
      endWithError(stream, error, sse);
    }
    return reply;
  });

  app.addHook("onClose", async () => {
    if (ownEngine) await engine.close();
  });

  // Exposed for startMlService's graceful stop.
  (app as FastifyInstance & { mlBeginStop?: () => void }).mlBeginStop = () => {
    stopping = true;
  };

  return { app, engine, ready };
}

export async function startMlService(
  config: MlServiceConfig,
  deps: MlServiceDeps,
): Promise<{ url: string; app: FastifyInstance; ready: Promise<void>; stop(): Promise<void> }> {
  const { app, engine, ready } = await buildMlServiceApp(config, deps);
  const address = await app.listen({ port: config.port, host: config.host });
  const url = address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1");
  deps.logger.info({ url }, "ml-service listening");
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      (app as FastifyInstance & { mlBeginStop?: () => void }).mlBeginStop?.();
      // Stop accepting at once, let running generations finish (bounded), then abort the rest and free the model.
      const closing = app.close();
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      while (engine.stats().running + engine.stats().waiting > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      engine.abortAll();
      // Answers are complete or aborted now: close the keep-alive connections they leave behind,
      // then, after a short grace, whatever is still open.
      const server = app.server;
      const sweep = setInterval(() => server.closeIdleConnections(), 25);
      const grace = setTimeout(() => server.closeAllConnections(), 2_000);
      try {
        await closing;
      } finally {
        clearInterval(sweep);
        clearTimeout(grace);
      }
      await engine.close();
    })());
  return { url, app, ready, stop };
}

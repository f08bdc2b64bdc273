/**
 * ML Service: runs the model in process and serves it over HTTP, on the shared HTTP shell.
 *  - `POST /inference`            the first version's contract (JSON, or NDJSON with stream: true)
 *  - `POST /v1/completions`       OpenAI-compatible (SSE streaming, `usage`)
 *  - `POST /v1/chat/completions`  OpenAI-compatible, formatted with the model's chat template
 *  - `GET /v1/models`, `GET /health` (readiness), `GET /livez` (liveness), `GET /metrics`
 * Errors are always `{"error":{"code","message"}}`; 400 for bad input, 503 + Retry-After for a full
 * wait queue or a model still loading; a client that disconnects aborts its generation.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { MlServiceConfig } from "../../config.js";
import { isAppError } from "../../errors.js";
import { createLlamaCppEngine } from "../../engines/llama-cpp.js";
import type { Engine } from "../../engines/types.js";
import { createHttpApp, toAppError } from "../../http/server.js";
import { createRegistry } from "../../observability/metrics.js";
import { createMetricsApp, listenMetrics } from "../../http/metrics-app.js";
import { requireInternalToken } from "./auth.js";
import { drain } from "./drain.js";
import { registerHealth } from "./health.js";
import { createMlMetrics } from "./metrics.js";
import { registerNativeRoutes } from "./native-routes.js";
import { registerOpenAiRoutes } from "./openai-routes.js";
import { createServing } from "./serving.js";
import { registerTracing } from "./tracing.js";

export interface MlServiceDeps {
  logger: Logger;
  registry?: Registry;
}

const BODY_LIMIT_BYTES = 1024 * 1024;

export async function buildMlServiceApp(
  config: MlServiceConfig,
  deps: MlServiceDeps,
): Promise<{ app: FastifyInstance; engine: Engine; ready: Promise<void>; beginStop: () => void }> {
  const logger = deps.logger.child({ component: "ml-service" });
  const registry = deps.registry ?? createRegistry({ defaultMetrics: true, component: "ml-service" });
  const engine = createLlamaCppEngine({ ...config, logger });
  const metrics = createMlMetrics(registry, engine);
  const serving = createServing(engine, metrics, logger);

  // The shell's request metrics go into a registry of their own: in `all` mode the ML Service's
  // registry is served beside the gateway's, and both would hold http_requests_total.
  const registries = [createRegistry(), registry];
  const app = createHttpApp({ logger, registries, bodyLimitBytes: BODY_LIMIT_BYTES, health: false, metricsInline: config.metricsPort === undefined });
  // JSON only: other bodies are refused with 415 instead of being read as JSON.
  app.removeContentTypeParser(["text/plain", "application/x-www-form-urlencoded"]);
  app.addHook("onError", async (_request, _reply, error) => {
    metrics.errors.inc({ model: serving.modelName(), code: (isAppError(error) ? error : toAppError(error)).code });
  });

  registerTracing(app);
  if (config.token) requireInternalToken(app, config.token);
  registerHealth(app, serving);
  registerNativeRoutes(app, serving, config.maxTokensLimit, config.streamFlushMs);
  registerOpenAiRoutes(app, serving, config.maxTokensLimit);

  app.addHook("onClose", async () => {
    await engine.close();
  });
  if (config.metricsPort !== undefined) {
    const metricsApp = createMetricsApp(registries);
    app.addHook("onListen", async () => {
      deps.logger.info({ url: await listenMetrics(metricsApp, config.host, config.metricsPort as number) }, "ml-service metrics listening");
    });
    app.addHook("onClose", async () => {
      await metricsApp.close();
    });
  }
  return { app, engine, ready: serving.ready, beginStop: () => serving.beginStop() };
}

export async function startMlService(
  config: MlServiceConfig,
  deps: MlServiceDeps,
): Promise<{ url: string; app: FastifyInstance; ready: Promise<void>; stop(): Promise<void> }> {
  const { app, engine, ready, beginStop } = await buildMlServiceApp(config, deps);
  const address = await app.listen({ port: config.port, host: config.host });
  const url = address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1");
  deps.logger.info({ url }, "ml-service listening");
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      beginStop();
      await drain(app, engine);
    })());
  return { url, app, ready, stop };
}

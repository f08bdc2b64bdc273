/**
 * Starts one component (or all of them) with its infrastructure, HTTP endpoints and background
 * consumers, and returns how to stop it: stop taking work, finish what is in flight, close.
 */
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { Authenticator } from "../http/authenticator.js";
import { createHttpApp } from "../http/server.js";
import type { Logger } from "../observability/logger.js";
import { createRegistry, type Registry } from "../observability/metrics.js";
import { openInfrastructure, type Infrastructure } from "../runtime.js";
import { replayQuota } from "../domain/quota-replay.js";
import { createApiService } from "./api-service/index.js";
import { createCollector } from "./collector/index.js";
import { createGateway } from "./gateway/index.js";
import { createWorker } from "./worker/index.js";

export type ComponentName = "gateway" | "worker" | "collector" | "api-service" | "ml-service" | "all";

export interface Running {
  /** Where each HTTP endpoint listens, e.g. { gateway: "http://127.0.0.1:8080" }. */
  urls: Record<string, string>;
  infra?: Infrastructure;
  stop(): Promise<void>;
}

interface Part {
  health?: () => Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  const address = await app.listen({ host, port });
  return address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1");
}

export async function startComponent(name: ComponentName, config: Config, logger: Logger): Promise<Running> {
  // In `all` each part names itself; a lone component names the process.
  const log = name === "all" ? logger : logger.child({ component: name });
  const c = config.common;
  // Loaded only where it runs: node-llama-cpp costs ~40 MB of memory in every other component.
  const loadMlService = async () => (await import("./ml-service/index.js")).startMlService;
  if (name === "ml-service") {
    const startMlService = await loadMlService();
    const registry = createRegistry({ defaultMetrics: true });
    const ml = await startMlService(config.mlService, { logger: log, registry });
    return { urls: { mlService: ml.url }, stop: () => ml.stop() };
  }

  const all = name === "all";
  const needs = {
    database: all || name === "gateway" || name === "collector" || name === "api-service",
    redis: all || name === "gateway" || name === "collector" || name === "api-service",
    broker: all || name === "gateway" || name === "worker" || name === "collector",
    migrate: all,
  };
  const infra = await openInfrastructure(config, needs, log, all);
  log.info({ mode: config.mode, infrastructure: infra.describe() }, "infrastructure ready");
  const registry = createRegistry({ defaultMetrics: true });
  const registries: Registry[] = [registry];
  const parts: Part[] = [];
  const stops: Array<() => Promise<void>> = [];
  const urls: Record<string, string> = {};
  const auth =
    infra.users &&
    new Authenticator({ users: infra.users, anonymous: config.gateway.anonymous });

  let mlStop: (() => Promise<void>) | undefined;
  let mlReady: Promise<void> | undefined;
  let mlServiceUrl = config.worker.mlServiceUrl;
  if (all && !mlServiceUrl) {
    const mlRegistry = createRegistry();
    registries.push(mlRegistry);
    const startMlService = await loadMlService();
    const ml = await startMlService(config.mlService, { logger: log.child({ component: "ml-service" }), registry: mlRegistry });
    urls.mlService = ml.url;
    mlServiceUrl = ml.url;
    mlStop = ml.stop;
    mlReady = ml.ready;
  }

  const gateway =
    (all || name === "gateway") && auth && infra.quota && infra.requests && infra.queue && infra.events
      ? createGateway(config.gateway, {
          logger: log,
          registry,
          auth,
          quota: infra.quota,
          requests: infra.requests,
          queue: infra.queue,
          events: infra.events,
          requestsQueue: c.queues.requests,
          models: [...new Set([config.gateway.defaultModel, "default"])],
        })
      : undefined;
  if (gateway) parts.push(gateway);
  const api =
    (all || name === "api-service") && auth && infra.quota && infra.requests && infra.events
      ? createApiService(config.apiService, { logger: log, registry, auth, quota: infra.quota, requests: infra.requests, events: infra.events })
      : undefined;
  if (api) parts.push(api);
  const collector =
    (all || name === "collector") && infra.queue && infra.quota && infra.requests && infra.events
      ? createCollector(config.collector, {
          logger: log,
          registry,
          queue: infra.queue,
          quota: infra.quota,
          requests: infra.requests,
          events: infra.events,
          resultsQueue: c.queues.results,
        })
      : undefined;
  if (collector) parts.push(collector);
  const worker =
    (all || name === "worker") && infra.queue
      ? createWorker(
          { ...config.worker, mlServiceUrl },
          { logger: log, registry, queue: infra.queue, requestsQueue: c.queues.requests, resultsQueue: c.queues.results },
        )
      : undefined;
  if (worker) parts.push(worker);

  const port =
    name === "worker" ? config.worker.port : name === "collector" ? config.collector.port : name === "api-service" ? config.apiService.port : config.gateway.port;
  const app = createHttpApp({
    logger: log,
    registries,
    bodyLimitBytes: config.gateway.bodyLimitBytes,
    corsOrigins: config.common.corsOrigins,
    rateLimitPerIpPerMinute: name === "worker" || name === "collector" ? 0 : config.gateway.rateLimitPerIpPerMinute,
    health: async () => {
      const results: Array<Record<string, unknown>> = await Promise.all(parts.map((p) => p.health?.() ?? Promise.resolve({})));
      return { mode: config.mode, components: results.map((r) => r.component).filter(Boolean), infrastructure: infra.describe() };
    },
  });
  gateway?.register(app);
  api?.register(app);
  if (infra.quota && infra.requests && infra.describe().quota === "memory") {
    // The in-process quota store starts empty: rebuild it from the ledger and the open requests
    // before the first admission can be checked against it.
    const replayed = await replayQuota(infra.quota, await infra.requests.quotaReplay(new Date().toISOString().slice(0, 7)));
    if (replayed.settled + replayed.open > 0) log.info(replayed, "quota counters rebuilt from the database");
  }
  urls[name === "all" ? "gateway" : name] = await listen(app, c.host, port);

  if (infra.queue && infra.requests && infra.describe().queue === "memory") {
    // The in-process queue starts empty: whatever the database says is still open must be sent again.
    const reopened = await infra.requests.unpublishOpen();
    if (reopened > 0) log.warn({ count: reopened }, "open requests from an earlier run will be published again");
  }
  await collector?.start();
  if (worker) {
    if (mlReady) {
      // Start consuming once the model is loaded, so the first requests do not bounce off a 503.
      void mlReady.then(() => worker.start()).catch((error: unknown) => log.error({ err: error }, "worker could not start"));
    } else await worker.start();
  }

  // SSE streams first: the server's close waits for every open connection, and they never end alone.
  if (api) stops.push(() => api.stop());
  stops.push(async () => {
    await app.close();
  });
  for (const part of [gateway, worker, collector]) if (part) stops.push(() => part.stop());
  if (mlStop) stops.push(mlStop);
  stops.push(() => infra.close());

  if (all) {
    const base = urls.gateway ?? "";
    log.info(
      {
        gateway: base,
        ml_service: urls.mlService,
        try: `curl -X POST ${base}/api/v1/inference -d '{"prompt": "test prompt"}'`,
      },
      `ml-inference is up: send requests to ${base}/api/v1/inference`,
    );
    process.stderr.write(
      `\nml-inference is running (${config.mode} mode)\n  submit:  curl -X POST ${base}/api/v1/inference -d '{"prompt": "Once upon a time"}'\n  status:  curl ${base}/api/v1/status/<request_id>\n  events:  curl -N ${base}/events/<request_id>\n  quota:   curl ${base}/api/v1/quota\n  model:   ${mlServiceUrl}/health\n\n`,
    );
  }
  let stopping: Promise<void> | undefined;
  return {
    urls,
    infra,
    stop: () =>
      (stopping ??= (async () => {
        for (const stop of stops) await stop();
      })()),
  };
}

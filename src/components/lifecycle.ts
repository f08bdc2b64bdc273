/**
 * Each component as one shape: `start(config, deps) → { stop, health }`. The factories
 * (createGateway, …) build a component and start nothing; starting it (routes, the sweeper's
 * timer, consumers, a listening model server) happens here, and `stop` undoes it. What each
 * component needs from the infrastructure is said once, in NEEDS: the types of its deps come from
 * it, and a dependency that is missing at run time fails start-up, naming it.
 */
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { AppError } from "../errors.js";
import { Authenticator } from "../http/authenticator.js";
import type { Logger } from "../observability/logger.js";
import type { Registry } from "../observability/metrics.js";
import type { AdapterName, Adapters } from "../runtime.js";
import { createApiService, type ApiService } from "./api-service/index.js";
import { createCollector, type Collector } from "./collector/index.js";
import { createGateway, type Gateway } from "./gateway/index.js";
import { createWorker, type Worker } from "./worker/index.js";

export type PartName = "gateway" | "api-service" | "collector" | "worker" | "ml-service";

export const NEEDS = {
  gateway: ["requests", "batches", "backlog", "webhooks", "outbox", "stale", "users", "quota", "queue", "events", "streams", "runs"],
  "api-service": ["requests", "users", "quota", "events", "streams"],
  collector: ["requests", "quota", "queue", "events", "streams"],
  worker: ["queue", "streams", "runs"],
  "ml-service": [],
} as const satisfies Record<PartName, readonly AdapterName[]>;

export type InfraOf<P extends PartName> = Pick<Adapters, (typeof NEEDS)[P][number]>;
export type GatewayInfra = InfraOf<"gateway">;
export type ApiServiceInfra = InfraOf<"api-service">;
export type CollectorInfra = InfraOf<"collector">;
export type WorkerInfra = InfraOf<"worker">;

/** What every component gets from the process, whatever it runs on. */
export interface ProcessDeps {
  logger: Logger;
  registry: Registry;
}

/** For components that serve routes: the process's HTTP server, not yet listening. */
export interface HttpDeps extends ProcessDeps {
  http: FastifyInstance;
}

export interface Started {
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Fails start-up naming every dependency the caller did not give. */
export function requireDeps(component: string, deps: object, names: readonly string[]): void {
  const given = deps as Record<string, unknown>;
  const missing = names.filter((name) => given[name] === undefined || given[name] === null);
  if (missing.length > 0) {
    throw new AppError("config_invalid", `${component} cannot start: missing ${missing.join(", ")}`);
  }
}

const PROCESS_DEPS = ["logger", "registry"] as const;
const HTTP_DEPS = [...PROCESS_DEPS, "http"] as const;

const authenticator = (config: Config, users: Adapters["users"]) =>
  new Authenticator({ users, anonymous: config.gateway.anonymous, cacheTtlMs: config.gateway.authCacheTtlMs });

/** Registers POST /api/v1/inference on `http` and starts the sweeper. */
export async function startGateway(config: Config, deps: GatewayInfra & HttpDeps): Promise<Started & { gateway: Gateway }> {
  requireDeps("gateway", deps, [...NEEDS.gateway, ...HTTP_DEPS]);
  const gateway = createGateway(config.gateway, {
    logger: deps.logger,
    registry: deps.registry,
    auth: authenticator(config, deps.users),
    quota: deps.quota,
    requests: deps.requests,
    batches: deps.batches,
    backlog: deps.backlog,
    webhooks: deps.webhooks,
    users: deps.users,
    outbox: deps.outbox,
    stale: deps.stale,
    queue: deps.queue,
    events: deps.events,
    streams: deps.streams,
    runs: deps.runs,
    requestsQueue: config.common.queues.requests,
    models: [...new Set([config.gateway.defaultModel, "default"])],
  });
  gateway.register(deps.http);
  gateway.start();
  return { gateway, health: () => gateway.health(), stop: () => gateway.stop() };
}

/** Registers status, quota and SSE routes on `http`; stop() ends the open event streams. */
export async function startApiService(config: Config, deps: ApiServiceInfra & HttpDeps): Promise<Started & { api: ApiService }> {
  requireDeps("api-service", deps, [...NEEDS["api-service"], ...HTTP_DEPS]);
  const api = createApiService(config.apiService, {
    logger: deps.logger,
    registry: deps.registry,
    auth: authenticator(config, deps.users),
    quota: deps.quota,
    requests: deps.requests,
    events: deps.events,
    streams: deps.streams,
  });
  api.register(deps.http);
  return { api, health: () => api.health(), stop: () => api.stop() };
}

/** Consumes the results queue; stop() drains it. */
export async function startCollector(config: Config, deps: CollectorInfra & ProcessDeps): Promise<Started & { collector: Collector }> {
  requireDeps("collector", deps, [...NEEDS.collector, ...PROCESS_DEPS]);
  const collector = createCollector(config.collector, {
    logger: deps.logger,
    registry: deps.registry,
    queue: deps.queue,
    quota: deps.quota,
    requests: deps.requests,
    events: deps.events,
    streams: deps.streams,
    resultsQueue: config.common.queues.results,
  });
  await collector.start();
  return { collector, health: () => collector.health(), stop: () => collector.stop() };
}

/** Consumes the requests queue and calls the ML Service at config.worker.mlServiceUrl; stop() drains. */
export async function startWorker(config: Config, deps: WorkerInfra & ProcessDeps): Promise<Started & { worker: Worker }> {
  requireDeps("worker", deps, [...NEEDS.worker, ...PROCESS_DEPS]);
  if (!config.worker.mlServiceUrl) throw new AppError("config_invalid", "worker cannot start: missing the ML Service's URL (ML_SERVICE_URL)");
  const worker = createWorker(config.worker, {
    logger: deps.logger,
    registry: deps.registry,
    queue: deps.queue,
    streams: deps.streams,
    runs: deps.runs,
    requestsQueue: config.common.queues.requests,
    resultsQueue: config.common.queues.results,
  });
  await worker.start();
  return { worker, health: () => worker.health(), stop: () => worker.stop() };
}

/**
 * Listens on config.mlService's port with its own HTTP server; `ready` settles when the model is
 * loaded. Loaded only where it runs: node-llama-cpp costs ~40 MB of memory in every other component.
 */
export async function startMlServicePart(config: Config, deps: ProcessDeps): Promise<Started & { url: string; ready: Promise<void> }> {
  requireDeps("ml-service", deps, PROCESS_DEPS);
  const { startMlService } = await import("./ml-service/index.js");
  const ml = await startMlService(config.mlService, { logger: deps.logger, registry: deps.registry });
  return {
    url: ml.url,
    ready: ml.ready,
    // The model server's own /health says whether the model is loaded; a model still loading is
    // not a failure of the process hosting it.
    health: async () => {
      const response = await ml.app.inject({ method: "GET", url: "/health" });
      const body = response.json() as { status?: string };
      if (body.status === "failed") throw new AppError("model_not_ready", "the model failed to load");
      return { component: "ml-service", model: body.status };
    },
    stop: () => ml.stop(),
  };
}

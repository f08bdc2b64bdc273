/**
 * The one wiring of the platform: given a component (or `all`), its configuration and the
 * infrastructure it needs, starts the parts it is made of on one HTTP server and returns how to stop
 * them: stop taking work, finish what is in flight. `main` (through start.ts) and the test support
 * both come here; whoever opened the infrastructure closes it.
 */
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { createHttpApp, NotReady } from "../http/server.js";
import { createMetricsApp, listenMetrics } from "../http/metrics-app.js";
import { registerConsole } from "../http/console.js";
import { openApiDocument, registerApiDocs } from "../http/openapi/index.js";
import type { Logger } from "../observability/logger.js";
import { createRegistry, type Registry } from "../observability/metrics.js";
import type { AdapterName, Adapters, Infrastructure } from "../runtime.js";
import type { ApiService } from "./api-service/index.js";
import type { Collector } from "./collector/index.js";
import type { Gateway } from "./gateway/index.js";
import type { Worker } from "./worker/index.js";
import {
  NEEDS,
  requireDeps,
  startApiService,
  startCollector,
  startGateway,
  startMlServicePart,
  startWorker,
  type PartName,
  type Started,
} from "./lifecycle.js";

export type ComponentName = PartName | "all";

/** The parts each command runs. In `all` the ML Service runs in-process only without ML_SERVICE_URL. */
const PARTS: Record<ComponentName, readonly PartName[]> = {
  gateway: ["gateway"],
  "api-service": ["api-service"],
  collector: ["collector"],
  worker: ["worker"],
  "ml-service": ["ml-service"],
  all: ["ml-service", "gateway", "api-service", "collector", "worker"],
};

type NeedsOf<C extends ComponentName> = C extends PartName ? (typeof NEEDS)[C][number] : AdapterName;

/** The infrastructure a component is assembled from: what its parts need, none of it optional. */
export type InfraFor<C extends ComponentName> = Infrastructure<NeedsOf<C>>;

/** The adapters to open for a component. */
export function needsOf<C extends ComponentName>(component: C): NeedsOf<C>[] {
  return [...new Set(PARTS[component].flatMap((part) => NEEDS[part]))] as NeedsOf<C>[];
}

export interface AssembleOptions {
  logger: Logger;
  /**
   * Leave the collector and the worker idle until startConsumers(), so that messages wait in the
   * queues (suites that look at them there). Default: they start with the rest.
   */
  holdConsumers?: boolean;
}

export interface Assembly {
  /** Where each HTTP endpoint listens, e.g. { gateway: "http://127.0.0.1:8080", mlService: … }. */
  urls: Record<string, string>;
  /** The process's HTTP server (absent for a lone ml-service, which serves its own). */
  http?: FastifyInstance;
  parts: { gateway?: Gateway; api?: ApiService; collector?: Collector; worker?: Worker };
  /**
   * Settles once every consumer consumes: in `all` with the ML Service in-process, the worker starts
   * only when the model has loaded, so the first requests do not bounce off a 503.
   */
  ready: Promise<void>;
  startConsumers(): Promise<void>;
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  const address = await app.listen({ host, port });
  return address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "127.0.0.1");
}

function portOf(component: ComponentName, config: Config): number {
  if (component === "worker") return config.worker.port;
  if (component === "collector") return config.collector.port;
  if (component === "api-service") return config.apiService.port;
  return config.gateway.port;
}

export async function assemble<C extends ComponentName>(component: C, config: Config, infra: InfraFor<C>, options: AssembleOptions): Promise<Assembly> {
  const parts = new Set(PARTS[component]);
  if (component === "all" && config.worker.mlServiceUrl) parts.delete("ml-service");
  // Every part's needs are checked before anything starts, so a bad wiring leaves nothing running.
  requireDeps(component, infra, needsOf(component));
  // Checked above; each part's start checks its own again.
  const adapters = infra as unknown as Adapters;
  // Every part names itself (component: …) on the logger it is given; the shell's and this
  // function's own lines carry the lone component's name. One name per line, never two.
  const log = component === "all" ? options.logger : options.logger.child({ component });
  const registry = createRegistry({ defaultMetrics: true });
  const urls: Record<string, string> = {};
  const running: Array<Started & { name: PartName }> = [];
  const assembly: Assembly = {
    urls,
    parts: {},
    ready: Promise.resolve(),
    startConsumers: async () => undefined,
    // Ready, or which dependencies are down; nothing more (no hosts, paths or counts).
    health: async () => {
      const results = await Promise.allSettled(running.map((part) => part.health()));
      const down = new Set<string>();
      results.forEach((result, i) => {
        if (result.status === "fulfilled") return;
        const named = result.reason instanceof NotReady && Array.isArray(result.reason.body.down) ? (result.reason.body.down as string[]) : [running[i]!.name];
        for (const name of named) down.add(name);
      });
      if (down.size > 0) throw new NotReady({ down: [...down].sort() }, 1);
      return { mode: config.mode, components: results.map((r) => (r.status === "fulfilled" ? r.value.component : undefined)).filter(Boolean) };
    },
    stop: async () => undefined,
  };
  let stopping: Promise<void> | undefined;
  let http: FastifyInstance | undefined;
  let metricsApp: FastifyInstance | undefined;
  const stopPart = async (name: PartName) => {
    for (const part of running.filter((p) => p.name === name)) await part.stop();
  };
  const stopAll = () =>
    (stopping ??= (async () => {
      // SSE streams first: the server's close waits for every open connection, and they never end alone.
      await stopPart("api-service");
      await http?.close();
      await metricsApp?.close();
      for (const name of ["gateway", "worker", "collector", "ml-service"] as const) await stopPart(name);
    })());
  assembly.stop = stopAll;

  try {
    await infra.recover();
    let ml: (Started & { url: string; ready: Promise<void> }) | undefined;
    const registries: Registry[] = [registry];
    let workerConfig = config;
    if (parts.has("ml-service")) {
      const own = component === "ml-service";
      const mlRegistry = own ? registry : createRegistry();
      if (!own) registries.push(mlRegistry);
      ml = await startMlServicePart(config, { logger: options.logger, registry: mlRegistry });
      running.push({ name: "ml-service", ...ml });
      urls.mlService = ml.url;
      workerConfig = { ...config, worker: { ...config.worker, mlServiceUrl: ml.url } };
      // A lone ML Service serves its own /health and /metrics.
      if (own) return assembly;
    }

    const consumersOnly = component === "worker" || component === "collector";
    http = createHttpApp({
      logger: log,
      registries,
      bodyLimitBytes: config.gateway.bodyLimitBytes,
      corsOrigins: config.common.corsOrigins,
      rateLimitPerIpPerMinute: consumersOnly ? 0 : config.gateway.rateLimitPerIpPerMinute,
      health: () => assembly.health(),
      metricsInline: config.common.metricsPort === undefined,
    });
    assembly.http = http;
    const httpDeps = { ...adapters, logger: options.logger, registry, http };
    if (parts.has("gateway")) {
      const gateway = await startGateway(config, httpDeps);
      running.push({ name: "gateway", ...gateway });
      assembly.parts.gateway = gateway.gateway;
      // The web console is served where people reach the platform: the gateway (`/` leads there in `all`).
      registerConsole(http, { redirectRoot: component === "all" });
    }
    if (parts.has("api-service")) {
      const api = await startApiService(config, httpDeps);
      running.push({ name: "api-service", ...api });
      assembly.parts.api = api.api;
    }
    // The API reference of what this app serves, once per app (in `all`, gateway and API service share it).
    if (parts.has("gateway") || parts.has("api-service")) {
      const documented = parts.has("gateway") && parts.has("api-service") ? "all" : parts.has("gateway") ? "gateway" : "api-service";
      const g = config.gateway;
      const limits = { maxLengthLimit: g.maxLengthLimit, maxPromptChars: g.maxPromptChars, bodyLimitBytes: g.bodyLimitBytes, defaultModel: g.defaultModel };
      registerApiDocs(http, { document: openApiDocument({ component: documented, limits }) });
    }
    urls[component === "all" ? "gateway" : component] = await listen(http, config.common.host, portOf(component, config));
    if (config.common.metricsPort !== undefined) {
      metricsApp = createMetricsApp(registries);
      urls.metrics = await listenMetrics(metricsApp, config.common.host, config.common.metricsPort);
    }

    const processDeps = { ...adapters, logger: options.logger, registry };
    let collectorStarting: Promise<void> | undefined;
    let workerStarting: Promise<void> | undefined;
    const startCollectorOnce = () =>
      (collectorStarting ??= (async () => {
        if (!parts.has("collector")) return;
        const collector = await startCollector(config, processDeps);
        running.push({ name: "collector", ...collector });
        assembly.parts.collector = collector.collector;
      })());
    const startWorkerOnce = () =>
      (workerStarting ??= (async () => {
        if (!parts.has("worker")) return;
        await ml?.ready;
        if (stopping) return;
        const worker = await startWorker(workerConfig, processDeps);
        running.push({ name: "worker", ...worker });
        assembly.parts.worker = worker.worker;
      })());
    assembly.startConsumers = async () => {
      await startCollectorOnce();
      await startWorkerOnce();
    };
    if (!options.holdConsumers) {
      await startCollectorOnce();
      // With the model loading in this process the worker starts when it is ready; without, now.
      if (ml) {
        assembly.ready = startWorkerOnce();
        assembly.ready.catch((error: unknown) => log.error({ err: error }, "worker could not start"));
      } else await startWorkerOnce();
    }
    return assembly;
  } catch (error) {
    await stopAll().catch((stopError: unknown) => log.warn({ err: stopError }, "stop after a failed start failed"));
    throw error;
  }
}

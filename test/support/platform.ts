/**
 * Starts the platform in this process through the same assemble() that `ml-inference all` runs, on
 * infrastructure built for the test: the real servers with a private schema, queues and key prefix
 * per run, or the embedded adapters on an in-memory PGlite. Without `mlServiceUrl` the in-process ML
 * Service runs the shared model, as in `all`.
 */
import type { FastifyInstance } from "fastify";
import { loadConfig, type Config } from "../../src/config.js";
import { silentLogger } from "../../src/observability/logger.js";
import { assemble, needsOf, type Assembly } from "../../src/components/assemble.js";
import type { Gateway } from "../../src/components/gateway/index.js";
import type { ApiService } from "../../src/components/api-service/index.js";
import type { Worker } from "../../src/components/worker/index.js";
import type { Collector } from "../../src/components/collector/index.js";
import { openInfrastructure } from "../../src/runtime.js";
import { RedisEventBus } from "../../src/adapters/redis/event-bus.js";
import { MemoryEventBus, MemoryEventHub } from "../../src/adapters/memory/event-bus.js";
import type { EventBus, MessageQueue, Outbox, QuotaLimits, QuotaStore, RequestStore, RequestStreams, RunStates, UserStore } from "../../src/domain/ports.js";
import { createTestUser } from "./users.js";
import { deleteQueues } from "./cleanup.js";
import { freshPglite, freshPostgres, type TestDatabase } from "./databases.js";
import { TEST_URLS, uniqueName } from "./services.js";
import { STORIES_MODEL_PATH } from "./model.js";

export type Backend = "servers" | "embedded";

export interface PlatformOptions {
  backend: Backend;
  anonymous?: boolean;
  /** Start worker and collector (default true). */
  consumers?: boolean;
  /** Use this model server instead of starting one (e.g. a closed port, to test retries). */
  mlServiceUrl?: string;
  env?: Record<string, string>;
}

export interface Platform {
  backend: Backend;
  config: Config;
  app: FastifyInstance;
  url: string;
  /** Where /metrics is served when METRICS_PORT is set (else on `url`). */
  metricsUrl: string | undefined;
  database: TestDatabase;
  quota: QuotaStore;
  queue: MessageQueue;
  events: EventBus;
  streams: RequestStreams;
  runs: RunStates;
  requests: RequestStore;
  outbox: Outbox;
  users: UserStore;
  gateway: Gateway;
  api: ApiService;
  worker?: Worker;
  collector: Collector;
  mlUrl: string;
  queues: { requests: string; results: string };
  /** A user with its own tier and a fresh API key; returns the Authorization header value. */
  createUser(limits?: Partial<QuotaLimits>): Promise<{ userId: string; authorization: string }>;
  /** A second API service "replica" with its own event bus connection, sharing the stores. */
  /** `settings` override the replica's API service settings (its SSE heartbeat, say). */
  startApiReplica(settings?: Partial<Config["apiService"]>): Promise<{ url: string; stop(): Promise<void> }>;
  startConsumers(): Promise<void>;
  stop(): Promise<void>;
}


function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the assembled platform has no ${what}`);
  return value;
}

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const servers = options.backend === "servers";
  const queues = { requests: uniqueName("req"), results: uniqueName("res") };
  const prefix = `${uniqueName("t")}:`;
  const config = loadConfig(
    {
      HOST: "127.0.0.1",
      PORT: "0",
      ML_SERVICE_PORT: "0",
      MODEL: STORIES_MODEL_PATH,
      ML_BATCH_SEQUENCES: "4",
      QUEUE_REQUESTS: queues.requests,
      QUEUE_RESULTS: queues.results,
      REDIS_KEY_PREFIX: prefix,
      ...(servers ? { REDIS_URL: TEST_URLS.redis, AMQP_URL: TEST_URLS.rabbitmq } : {}),
      ...(options.mlServiceUrl ? { ML_SERVICE_URL: options.mlServiceUrl } : {}),
      ANONYMOUS_ACCESS: options.anonymous ? "true" : "false",
      // Tests revoke keys and expect the next request to see it.
      AUTH_CACHE_TTL_MS: "0",
      WORKER_RETRY_BASE_MS: "50",
      WORKER_MAX_ATTEMPTS: "2",
      ML_REQUEST_TIMEOUT_MS: "20000",
      SSE_HEARTBEAT_MS: "200",
      SWEEP_INTERVAL_MS: "100000",
      ...(options.env ?? {}),
    },
    "all",
  );
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const database = servers ? await freshPostgres() : await freshPglite();
    stops.push(() => database.drop());
    if (servers) stops.push(() => deleteQueues(Object.values(queues)));
    const eventHub = new MemoryEventHub();
    const infra = await openInfrastructure(config, needsOf("all"), silentLogger, { embeddedAllowed: !servers, database: database.db, eventHub });
    stops.push(() => infra.close());
    const assembly: Assembly = await assemble("all", config, infra, { logger: silentLogger, holdConsumers: options.consumers === false });
    stops.push(() => assembly.stop());
    await assembly.ready;
    const { requests, outbox, users } = infra;

    let userCount = 0;
    return {
      backend: options.backend,
      config,
      app: present(assembly.http, "HTTP server"),
      url: present(assembly.urls.gateway, "gateway URL"),
      metricsUrl: assembly.urls.metrics,
      database,
      quota: infra.quota,
      queue: infra.queue,
      events: infra.events,
      streams: infra.streams,
      runs: infra.runs,
      requests,
      outbox,
      users,
      gateway: present(assembly.parts.gateway, "gateway"),
      api: present(assembly.parts.api, "API service"),
      // Started by startConsumers() when held back.
      get worker() {
        return assembly.parts.worker;
      },
      get collector() {
        return present(assembly.parts.collector, "collector (consumers not started)");
      },
      mlUrl: present(options.mlServiceUrl ?? assembly.urls.mlService, "ML Service URL"),
      queues,
      startConsumers: () => assembly.startConsumers(),
      async createUser(limits = {}) {
        return createTestUser(users, `user-${++userCount}-${Math.random().toString(36).slice(2, 8)}`, limits);
      },
      async startApiReplica(settings = {}) {
        const bus = servers ? await RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix }) : new MemoryEventBus({ hub: eventHub });
        // The stores are shared and were recovered already; only the bus is the replica's own.
        const replicaInfra = {
          requests,
          users,
          quota: infra.quota,
          events: bus,
          streams: infra.streams,
          describe: () => infra.describe(),
          recover: async () => undefined,
          close: () => bus.close(),
        };
        const replica = await assemble("api-service", { ...config, apiService: { ...config.apiService, ...settings, port: 0 } }, replicaInfra, {
          logger: silentLogger,
        }).catch(async (error: unknown) => {
          await bus.close();
          throw error;
        });
        return {
          url: present(replica.urls["api-service"], "replica URL"),
          stop: async () => {
            await replica.stop();
            await replicaInfra.close();
          },
        };
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}


/** Polls the status endpoint until the request is finished. */
export async function waitForFinal(
  url: string,
  requestId: string,
  authorization: string | undefined,
  timeoutMs = 20_000,
): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${url}/api/v1/status/${requestId}`, { headers: authorization ? { authorization } : {} });
    const body = (await response.json()) as Record<string, any>;
    if (body.status === "completed" || body.status === "failed" || body.status === "cancelled") return body;
    if (Date.now() > deadline) throw new Error(`request ${requestId} still ${body.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The caller's quota as GET /api/v1/quota answers it. */
export async function quotaOf(platform: { url: string }, authorization: string): Promise<Record<string, any>> {
  const response = await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization } });
  return (await response.json()) as Record<string, any>;
}

export async function submit(
  url: string,
  body: unknown,
  authorization?: string,
): Promise<{ status: number; body: Record<string, any>; headers: Headers }> {
  const response = await fetch(`${url}/api/v1/inference`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any>, headers: response.headers };
}

/** Reads an SSE stream until it closes (or the timeout), returning the events. */
export async function readEvents(
  url: string,
  authorization: string | undefined,
  timeoutMs = 20_000,
): Promise<{ events: Array<{ event: string; data: any }>; heartbeats: number; status: number }> {
  const response = await fetch(url, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  const events: Array<{ event: string; data: any }> = [];
  let heartbeats = 0;
  for (const block of text.split("\n\n")) {
    if (block.startsWith(": heartbeat")) heartbeats++;
    const event = /^event: (.*)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (event && data) events.push({ event, data: JSON.parse(data) });
  }
  return { events, heartbeats, status: response.status };
}

/**
 * Starts the platform's components in this process, on real servers (private schema, queues and
 * key prefix per run) or on the embedded adapters, with a real ML Service running the shared model.
 */
import { Redis } from "ioredis";
import type { FastifyInstance } from "fastify";
import { loadConfig, type Config } from "../../src/config.js";
import { createHttpApp } from "../../src/http/server.js";
import { Authenticator } from "../../src/http/authenticator.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { createGateway, type Gateway } from "../../src/components/gateway/index.js";
import { createApiService, type ApiService } from "../../src/components/api-service/index.js";
import { createWorker, type Worker } from "../../src/components/worker/index.js";
import { createCollector, type Collector } from "../../src/components/collector/index.js";
import { startMlService } from "../../src/components/ml-service/index.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { SqlUserStore } from "../../src/adapters/postgres/user-store.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { RedisEventBus } from "../../src/adapters/redis/event-bus.js";
import { RabbitMessageQueue } from "../../src/adapters/rabbitmq/message-queue.js";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { MemoryEventBus, MemoryEventHub } from "../../src/adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import type { EventBus, MessageQueue, QuotaLimits, QuotaStore } from "../../src/domain/ports.js";
import { generateApiKey } from "../../src/domain/api-keys.js";
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
  database: TestDatabase;
  quota: QuotaStore;
  queue: MessageQueue;
  events: EventBus;
  requests: SqlRequestStore;
  users: SqlUserStore;
  gateway: Gateway;
  api: ApiService;
  worker?: Worker;
  collector: Collector;
  mlUrl: string;
  queues: { requests: string; results: string };
  /** A user with its own tier and a fresh API key; returns the Authorization header value. */
  createUser(limits?: Partial<QuotaLimits>): Promise<{ userId: string; authorization: string }>;
  /** A second API service "replica" with its own event bus connection, sharing the stores. */
  startApiReplica(settings?: Partial<Config["apiService"]>): Promise<{ url: string; stop(): Promise<void> }>;
  startConsumers(): Promise<void>;
  stop(): Promise<void>;
}

const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const servers = options.backend === "servers";
  const queues = { requests: uniqueName("req"), results: uniqueName("res") };
  const prefix = `${uniqueName("t")}:`;
  const config = loadConfig(
    {
      ANONYMOUS_ACCESS: options.anonymous ? "true" : "false",
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
  const database = servers ? await freshPostgres() : await freshPglite();
  stops.push(() => database.drop());
  const requests = new SqlRequestStore(database.db);
  const users = new SqlUserStore(database.db);

  let quota: QuotaStore;
  let events: EventBus;
  let queue: MessageQueue;
  let makeReplicaBus: () => Promise<EventBus>;
  if (servers) {
    const redis = new Redis(TEST_URLS.redis);
    quota = new RedisQuotaStore({ redis, keyPrefix: prefix, ownsConnection: true });
    stops.push(() => quota.close());
    events = await RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    stops.push(() => events.close());
    makeReplicaBus = () => RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const rabbit = await RabbitMessageQueue.connect({ url: TEST_URLS.rabbitmq, queues: [queues.requests, queues.results] });
    queue = rabbit;
    stops.push(async () => {
      await rabbit.close();
      await deleteQueues(Object.values(queues));
    });
  } else {
    quota = new MemoryQuotaStore();
    const hub = new MemoryEventHub();
    events = new MemoryEventBus({ hub });
    makeReplicaBus = async () => new MemoryEventBus({ hub });
    queue = new MemoryMessageQueue();
    stops.push(() => queue.close());
  }

  let mlUrl = options.mlServiceUrl ?? "";
  if (!options.mlServiceUrl) {
    const ml = await startMlService(
      { ...config.mlService, port: 0, host: "127.0.0.1", model: STORIES_MODEL_PATH, batchSequences: 4 },
      { logger: silentLogger, registry: createRegistry() },
    );
    await ml.ready;
    mlUrl = ml.url;
    stops.push(() => ml.stop());
  }

  const registry = createRegistry();
  const auth = new Authenticator({ users, anonymous: config.gateway.anonymous, cacheTtlMs: 0 });
  const gateway = createGateway(config.gateway, {
    logger: silentLogger,
    registry,
    auth,
    quota,
    requests,
    queue,
    events,
    requestsQueue: queues.requests,
    models: ["default"],
  });
  const api = createApiService(config.apiService, { logger: silentLogger, registry, auth, quota, requests, events });
  const app = createHttpApp({ logger: silentLogger, registries: [registry], bodyLimitBytes: config.gateway.bodyLimitBytes });
  gateway.register(app);
  api.register(app);
  const url = (await app.listen({ host: "127.0.0.1", port: 0 })).replace("localhost", "127.0.0.1");

  const collector = createCollector(config.collector, {
    logger: silentLogger,
    registry,
    queue,
    quota,
    requests,
    events,
    resultsQueue: queues.results,
  });
  const worker = createWorker(
    { ...config.worker, mlServiceUrl: mlUrl },
    { logger: silentLogger, registry, queue, requestsQueue: queues.requests, resultsQueue: queues.results },
  );
  let consumersStarted = false;
  const startConsumers = async () => {
    if (consumersStarted) return;
    consumersStarted = true;
    await collector.start();
    await worker.start();
  };
  if (options.consumers !== false) await startConsumers();

  let userCount = 0;
  const platform: Platform = {
    backend: options.backend,
    config,
    app,
    url,
    database,
    quota,
    queue,
    events,
    requests,
    users,
    gateway,
    api,
    worker,
    collector,
    mlUrl,
    queues,
    startConsumers,
    async createUser(limits = {}) {
      const userId = `user-${++userCount}-${Math.random().toString(36).slice(2, 8)}`;
      await users.upsertTier({ name: `tier-${userId}`, limits: { ...UNLIMITED, ...limits } });
      await users.createUser(userId, `tier-${userId}`);
      const key = generateApiKey();
      await users.addApiKey(key.keyId, userId, key.keyHash);
      return { userId, authorization: `Bearer ${key.key}` };
    },
    async startApiReplica(settings = {}) {
      const bus = await makeReplicaBus();
      const replicaRegistry = createRegistry();
      const replica = createApiService({ ...config.apiService, ...settings }, { logger: silentLogger, registry: replicaRegistry, auth, quota, requests, events: bus });
      const replicaApp = createHttpApp({ logger: silentLogger, registries: [replicaRegistry] });
      replica.register(replicaApp);
      const replicaUrl = await replicaApp.listen({ host: "127.0.0.1", port: 0 });
      return {
        url: replicaUrl,
        stop: async () => {
          await replica.stop();
          await replicaApp.close();
          await bus.close();
        },
      };
    },
    async stop() {
      await api.stop();
      await app.close();
      await gateway.stop();
      if (consumersStarted) {
        await worker.stop();
        await collector.stop();
      }
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    },
  };
  return platform;
}

async function deleteQueues(names: string[]): Promise<void> {
  const amqp = await import("amqplib");
  const connection = await amqp.connect(TEST_URLS.rabbitmq);
  const channel = await connection.createChannel();
  for (const name of names) {
    for (const queue of [name, `${name}.dead`]) await channel.deleteQueue(queue).catch(() => undefined);
  }
  await connection.close().catch(() => undefined);
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
    if (body.status === "completed" || body.status === "failed") return body;
    if (Date.now() > deadline) throw new Error(`request ${requestId} still ${body.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
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

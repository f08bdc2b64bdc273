/**
 * Opens the infrastructure a component needs, picked from the configuration: given DATABASE_URL,
 * REDIS_URL and AMQP_URL the real servers; without them (`all` and the CLI only) PGlite on the data
 * folder and the in-process queue, quota store and event bus. Which adapters each component needs is
 * said once, in components/lifecycle.ts; this module only opens what it is asked for.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { AppError } from "./errors.js";
import type { Config } from "./config.js";
import type { EventBus, MessageQueue, Outbox, QuotaStore, RequestStore, RequestStreams, RunStates, StaleRequests, UserStore } from "./domain/ports.js";
import { PgSqlClient, PgliteSqlClient, type SqlClient } from "./adapters/postgres/sql-client.js";
import { migrate } from "./adapters/postgres/migrate.js";
import { SqlRequestStore } from "./adapters/postgres/request-store.js";
import { SqlUserStore } from "./adapters/postgres/user-store.js";
import { SqlOutbox } from "./adapters/postgres/outbox.js";
import { SqlStaleRequests } from "./adapters/postgres/stale-requests.js";
import { SqlQuotaLedger } from "./adapters/postgres/quota-ledger.js";
import { SqlBatchStore } from "./adapters/postgres/batch-store.js";
import { SqlBacklogStats } from "./adapters/postgres/backlog-stats.js";
import type { BatchStore } from "./domain/batches.js";
import type { BacklogStats } from "./domain/ports.js";
import { SqlWebhookStore } from "./adapters/postgres/webhook-store.js";
import type { WebhookStore } from "./domain/webhooks.js";
import { RedisQuotaStore } from "./adapters/redis/quota-store.js";
import { openBoundedRedis, readyWithin } from "./adapters/redis/connection.js";
import { RedisEventBus } from "./adapters/redis/event-bus.js";
import { RedisRequestStreams } from "./adapters/redis/request-streams.js";
import { RedisRunStates } from "./adapters/redis/run-states.js";
import { MemoryRequestStreams, MemoryStreamHub } from "./adapters/memory/request-streams.js";
import { MemoryRunStateHub, MemoryRunStates } from "./adapters/memory/run-states.js";
import { RabbitMessageQueue } from "./adapters/rabbitmq/message-queue.js";
import { MemoryQuotaStore } from "./adapters/memory/quota-store.js";
import { MemoryEventBus, MemoryEventHub } from "./adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "./adapters/memory/message-queue.js";
import type { Logger } from "./observability/logger.js";

/** Every adapter a component can be given. */
export interface Adapters {
  requests: RequestStore;
  batches: BatchStore;
  backlog: BacklogStats;
  webhooks: WebhookStore;
  outbox: Outbox;
  stale: StaleRequests;
  users: UserStore;
  quota: QuotaStore;
  events: EventBus;
  streams: RequestStreams;
  runs: RunStates;
  queue: MessageQueue;
}

export type AdapterName = keyof Adapters;

export interface InfrastructureLifecycle {
  /** What each adapter runs on, e.g. { database: "postgresql", quota: "redis", queue: "memory" }. */
  describe(): Record<string, string>;
  /**
   * Rebuilds what in-process adapters lost with the last process (quota counters, queued messages)
   * from the database. Nothing to do on the real servers. Call once, before serving.
   */
  recover(): Promise<void>;
  close(): Promise<void>;
}

/** Exactly the adapters named by K, none optional. */
export type Infrastructure<K extends AdapterName = AdapterName> = Pick<Adapters, K> & InfrastructureLifecycle;

export interface OpenOptions {
  /** True only for `all` and the CLI: without server URLs, use the embedded adapters. */
  embeddedAllowed: boolean;
  /** Apply migrations on open (embedded mode and `all`; Kubernetes runs the `migrate` Job instead). */
  migrate?: boolean;
  /** An open, migrated database to use instead of connecting to one; the caller closes it. */
  database?: SqlClient;
  /** The hubs of the in-process event bus, streams and run states, for callers that make more over them. */
  eventHub?: MemoryEventHub;
  streamHub?: MemoryStreamHub;
  runStateHub?: MemoryRunStateHub;
}

function required(value: string | undefined, variable: string, what: string, embeddedAllowed: boolean): string | undefined {
  if (value || embeddedAllowed) return value;
  throw new AppError("config_invalid", `${what} is required: set ${variable}`);
}

export interface OpenDatabase {
  db: SqlClient;
  requests: SqlRequestStore;
  outbox: SqlOutbox;
  stale: SqlStaleRequests;
  users: SqlUserStore;
  kind: string;
  close(): Promise<void>;
}

/** PostgreSQL at DATABASE_URL, or PGlite in the data folder where embedded is allowed. */
export async function openDatabase(config: Config, logger: Logger, options: Pick<OpenOptions, "embeddedAllowed" | "migrate">): Promise<OpenDatabase> {
  const c = config.common;
  const url = required(c.databaseUrl, "DATABASE_URL", "PostgreSQL", options.embeddedAllowed);
  let db: SqlClient;
  let kind: string;
  if (url) {
    const b = c.bounds;
    db = new PgSqlClient({
      connectionString: url,
      max: 10,
      bounds: { queryTimeoutMs: b.pgQueryTimeoutMs, bulkQueryTimeoutMs: b.pgBulkQueryTimeoutMs, connectTimeoutMs: b.pgConnectTimeoutMs },
    });
    kind = "postgresql";
  } else {
    const dir = resolve(join(c.dataDir, "pgdata"));
    mkdirSync(dir, { recursive: true });
    logger.info({ dir }, "opening embedded PostgreSQL (PGlite)");
    db = await PgliteSqlClient.open(dir);
    kind = `pglite:${dir}`;
  }
  try {
    if (options.migrate || db.kind === "pglite") {
      const result = await migrate(db);
      if (result.applied.length > 0) logger.info({ applied: result.applied }, "migrations applied");
    }
  } catch (error) {
    await db.close();
    throw error;
  }
  return { db, ...databaseAdapters(db), kind, close: () => db.close() };
}

/** Everything that lives in the database, on one client. */
function databaseAdapters(db: SqlClient) {
  return {
    requests: new SqlRequestStore(db),
    batches: new SqlBatchStore(db),
    backlog: new SqlBacklogStats(db),
    webhooks: new SqlWebhookStore(db),
    outbox: new SqlOutbox(db),
    stale: new SqlStaleRequests(db),
    users: new SqlUserStore(db),
  };
}

/** Opens the named adapters, and only those; a name that cannot be opened fails the whole call. */
export async function openInfrastructure<K extends AdapterName>(
  config: Config,
  names: readonly K[],
  logger: Logger,
  options: OpenOptions,
): Promise<Infrastructure<K>> {
  const c = config.common;
  const wanted = new Set<AdapterName>(names);
  const closers: Array<() => Promise<void>> = [];
  const recoveries: Array<() => Promise<void>> = [];
  const kinds: Record<string, string> = {};
  const opened: Partial<Adapters> = {};
  const lifecycle: InfrastructureLifecycle = {
    describe: () => kinds,
    recover: async () => {
      for (const recover of recoveries) await recover();
    },
    close: async () => {
      for (const close of closers.reverse()) await close().catch((error: unknown) => logger.warn({ err: error }, "close failed"));
    },
  };
  /** In-process state is rebuilt from the database, so an adapter that needs it needs the database too. */
  const ledger = (what: string): { requests: RequestStore; outbox: Outbox; db: SqlClient } => {
    if (!opened.requests || !opened.outbox || !db) {
      throw new AppError("config_invalid", `the in-process ${what} is rebuilt from the database on start: open it with "requests"`);
    }
    return { requests: opened.requests, outbox: opened.outbox, db };
  };
  let db: SqlClient | undefined;
  try {
    if (["requests", "batches", "backlog", "webhooks", "outbox", "stale", "users"].some((name) => wanted.has(name as AdapterName))) {
      if (options.database) {
        db = options.database;
        kinds.database = options.database.kind;
      } else {
        const database = await openDatabase(config, logger, options);
        closers.push(() => database.close());
        db = database.db;
        kinds.database = database.kind;
      }
      Object.assign(opened, databaseAdapters(db));
    }
    if (wanted.has("quota") || wanted.has("events")) {
      const url = required(c.redisUrl, "REDIS_URL", "Redis", options.embeddedAllowed);
      if (url) {
        const redis = openBoundedRedis(url, "ml-inference-quota", c.bounds.redisCommandTimeoutMs, c.bounds.redisCommandTimeoutMs);
        redis.on("error", (error: Error) => logger.warn({ err: error }, "redis connection error"));
        if (!(await readyWithin(redis, 10_000))) logger.error("Redis does not answer yet: admissions get 503 until it does");
        closers.push(async () => void (await redis.quit().catch(() => redis.disconnect())));
        // Rebuilt from the ledger if Redis loses its data (restarted empty, replaced).
        const quotaLedger = db ? new SqlQuotaLedger(db) : undefined;
        opened.quota = new RedisQuotaStore({ redis, keyPrefix: c.redisKeyPrefix, ledger: quotaLedger });
        const events = await RedisEventBus.create({ url, keyPrefix: c.redisKeyPrefix });
        closers.push(() => events.close());
        opened.events = events;
        kinds.quota = "redis";
      } else {
        const quota = new MemoryQuotaStore();
        closers.push(() => quota.close());
        const { requests } = ledger("quota store");
        recoveries.push(async () => {
          const replayed = await quota.recover(requests);
          if (replayed.settled + replayed.open > 0) logger.info(replayed, "quota counters rebuilt from the database");
        });
        opened.quota = quota;
        const events = new MemoryEventBus({ hub: options.eventHub ?? new MemoryEventHub() });
        closers.push(() => events.close());
        opened.events = events;
        kinds.quota = "memory";
      }
    }
    if (wanted.has("streams") || wanted.has("runs")) {
      const url = required(c.redisUrl, "REDIS_URL", "Redis", options.embeddedAllowed);
      const bounds = { keyPrefix: c.redisKeyPrefix, ttlMs: c.streams.ttlMs, bound: c.streams.maxEvents };
      if (wanted.has("streams")) {
        const streams = url
          ? await RedisRequestStreams.create({ url, ...bounds, logger })
          : new MemoryRequestStreams({ hub: options.streamHub ?? new MemoryStreamHub(), ttlMs: bounds.ttlMs, bound: bounds.bound });
        closers.push(() => streams.close());
        opened.streams = streams;
      }
      if (wanted.has("runs")) {
        const runs = url ? await RedisRunStates.create({ url, keyPrefix: c.redisKeyPrefix, logger }) : new MemoryRunStates({ hub: options.runStateHub ?? new MemoryRunStateHub() });
        closers.push(() => runs.close());
        opened.runs = runs;
      }
    }
    if (wanted.has("queue")) {
      const url = required(c.amqpUrl, "AMQP_URL", "RabbitMQ", options.embeddedAllowed);
      if (url) {
        const queue = await RabbitMessageQueue.connect({
          url,
          queues: [c.queues.requests, c.queues.results],
          logger: logger.child({ adapter: "rabbitmq" }),
          confirmTimeoutMs: c.bounds.amqpConfirmTimeoutMs,
          connectTimeoutMs: c.bounds.amqpConnectTimeoutMs,
        });
        closers.push(() => queue.close());
        opened.queue = queue;
        kinds.queue = "rabbitmq";
      } else {
        const queue = new MemoryMessageQueue();
        closers.push(() => queue.close());
        const { outbox } = ledger("message queue");
        recoveries.push(async () => {
          const reopened = await queue.recover(outbox);
          if (reopened > 0) logger.warn({ count: reopened }, "open requests from an earlier run will be published again");
        });
        opened.queue = queue;
        kinds.queue = "memory";
      }
    }
    return Object.assign(lifecycle, opened) as Infrastructure<K>;
  } catch (error) {
    await lifecycle.close();
    throw error;
  }
}

/**
 * Wiring: picks real servers or embedded adapters from the configuration and opens them. Given
 * DATABASE_URL, REDIS_URL and AMQP_URL the real servers are used; without them (`all` only) PGlite
 * on the data folder and in-process queue, quota store and event bus.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import { AppError } from "./errors.js";
import type { Config } from "./config.js";
import type { EventBus, MessageQueue, QuotaStore, RequestStore, UserStore } from "./domain/ports.js";
import { PgSqlClient, PgliteSqlClient, type SqlClient } from "./adapters/postgres/sql-client.js";
import { migrate } from "./adapters/postgres/migrate.js";
import { SqlRequestStore } from "./adapters/postgres/request-store.js";
import { SqlUserStore } from "./adapters/postgres/user-store.js";
import { RedisQuotaStore } from "./adapters/redis/quota-store.js";
import { RedisEventBus } from "./adapters/redis/event-bus.js";
import { RabbitMessageQueue } from "./adapters/rabbitmq/message-queue.js";
import { MemoryQuotaStore } from "./adapters/memory/quota-store.js";
import { MemoryEventBus } from "./adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "./adapters/memory/message-queue.js";
import type { Logger } from "./observability/logger.js";

export interface Needs {
  database?: boolean;
  redis?: boolean;
  broker?: boolean;
  /** Apply migrations on open (embedded mode and `all`; Kubernetes runs the `migrate` Job instead). */
  migrate?: boolean;
}

export interface Infrastructure {
  db?: SqlClient;
  requests?: RequestStore;
  users?: UserStore;
  quota?: QuotaStore;
  events?: EventBus;
  queue?: MessageQueue;
  describe(): Record<string, string>;
  close(): Promise<void>;
}

function required(value: string | undefined, variable: string, what: string, embeddedAllowed: boolean): string | undefined {
  if (value || embeddedAllowed) return value;
  throw new AppError("config_invalid", `${what} is required: set ${variable}`);
}

/** Opens what a component needs. `embeddedAllowed` is true only for `all` and the CLI. */
export async function openInfrastructure(config: Config, needs: Needs, logger: Logger, embeddedAllowed: boolean): Promise<Infrastructure> {
  const c = config.common;
  const closers: Array<() => Promise<void>> = [];
  const kinds: Record<string, string> = {};
  const infra: Infrastructure = {
    describe: () => kinds,
    close: async () => {
      for (const close of closers.reverse()) await close().catch((error: unknown) => logger.warn({ err: error }, "close failed"));
    },
  };
  try {
    if (needs.database) {
      const url = required(c.databaseUrl, "DATABASE_URL", "PostgreSQL", embeddedAllowed);
      let db: SqlClient;
      if (url) {
        db = new PgSqlClient({ connectionString: url, max: 10 });
        kinds.database = "postgresql";
      } else {
        const dir = resolve(join(c.dataDir, "pgdata"));
        mkdirSync(dir, { recursive: true });
        logger.info({ dir }, "opening embedded PostgreSQL (PGlite)");
        db = await PgliteSqlClient.open(dir);
        kinds.database = `pglite:${dir}`;
      }
      closers.push(() => db.close());
      if (needs.migrate || db.kind === "pglite") {
        const result = await migrate(db);
        if (result.applied.length > 0) logger.info({ applied: result.applied }, "migrations applied");
      }
      infra.db = db;
      infra.requests = new SqlRequestStore(db);
      infra.users = new SqlUserStore(db);
    }
    if (needs.redis) {
      const url = required(c.redisUrl, "REDIS_URL", "Redis", embeddedAllowed);
      if (url) {
        // Auto-pipelining: the scripts a batch of outcomes (or of admissions) runs in one tick go out in
        // one write, not one system call each.
        const redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, enableAutoPipelining: true, connectionName: "ml-inference-quota" });
        redis.on("error", (error: Error) => logger.warn({ err: error }, "redis connection error"));
        closers.push(async () => void (await redis.quit().catch(() => redis.disconnect())));
        infra.quota = new RedisQuotaStore({ redis, keyPrefix: c.redisKeyPrefix });
        const events = await RedisEventBus.create({ url, keyPrefix: c.redisKeyPrefix });
        closers.push(() => events.close());
        infra.events = events;
        kinds.quota = "redis";
      } else {
        infra.quota = new MemoryQuotaStore();
        closers.push(() => infra.quota!.close());
        infra.events = new MemoryEventBus();
        closers.push(() => infra.events!.close());
        kinds.quota = "memory";
      }
    }
    if (needs.broker) {
      const url = required(c.amqpUrl, "AMQP_URL", "RabbitMQ", embeddedAllowed);
      const queues = [c.queues.requests, c.queues.results];
      const queue: MessageQueue = url
        ? await RabbitMessageQueue.connect({ url, queues, logger: logger.child({ adapter: "rabbitmq" }) })
        : new MemoryMessageQueue();
      closers.push(() => queue.close());
      infra.queue = queue;
      kinds.queue = url ? "rabbitmq" : "memory";
    }
    return infra;
  } catch (error) {
    await infra.close();
    throw error;
  }
}

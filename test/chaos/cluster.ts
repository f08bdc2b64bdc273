/**
 * The platform as it runs in production, for fault injection: every component its own
 * `ml-inference <component>` process, on servers this harness started itself (Redis always; its own
 * PostgreSQL and RabbitMQ when asked, else private schemas and queues on the machine's servers), so
 * each can be killed, stopped or restarted without touching anything it did not start.
 */
import { Redis } from "ioredis";
import pg from "pg";
import { PgSqlClient } from "../../src/adapters/postgres/sql-client.js";
import { migrate } from "../../src/adapters/postgres/migrate.js";
import { SqlUserStore } from "../../src/adapters/postgres/user-store.js";
import { SqlQuotaLedger } from "../../src/adapters/postgres/quota-ledger.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { createTestUser } from "../support/users.js";
import { deleteQueues } from "../support/cleanup.js";
import type { QuotaLimits } from "../../src/domain/ports.js";
import { freePort, startProcess, waitForHttp, type Proc } from "../support/processes.js";
import { startPostgresServer, startRabbitServer, startRedisServer, type OwnPostgres, type OwnRabbit, type OwnRedis } from "../support/own-servers.js";
import { TEST_URLS, uniqueName } from "../support/services.js";
import { STORIES_MODEL_PATH } from "../support/model.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

export const COMPONENTS = ["ml-service", "gateway", "api-service", "worker", "collector"] as const;
export type ComponentName = (typeof COMPONENTS)[number];

export interface ClusterOptions {
  /** Start a PostgreSQL and a RabbitMQ of its own (needed to stop or restart them). */
  ownPostgresAndRabbit: boolean;
  log?: (line: string) => void;
}

export interface Cluster {
  redis: OwnRedis;
  postgres: OwnPostgres | undefined;
  rabbit: OwnRabbit | undefined;
  /** Every component reaches each server through one of these (blackholed by some scenarios); the harness directly. */
  proxies: Record<"postgres" | "redis" | "rabbitmq", TcpProxy>;
  gatewayUrl: string;
  db: PgSqlClient;
  quota: RedisQuotaStore;
  createUser(limits: Partial<QuotaLimits>): Promise<{ userId: string; authorization: string }>;
  kill(name: ComponentName): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  terminate(name: ComponentName): Promise<number | null>;
  start(name: ComponentName): Promise<void>;
  close(): Promise<void>;
}


export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const log = options.log ?? (() => undefined);
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    log("starting Redis");
    const redis = await startRedisServer();
    closers.push(() => redis.stop());
    let postgres: OwnPostgres | undefined;
    let rabbit: OwnRabbit | undefined;
    let databaseUrl: string;
    let amqpUrl: string;
    const schema = uniqueName("chaos").toLowerCase();
    if (options.ownPostgresAndRabbit) {
      log("starting PostgreSQL and RabbitMQ of its own");
      [postgres, rabbit] = await Promise.all([startPostgresServer(), startRabbitServer()]);
      closers.push(() => postgres!.stop(), () => rabbit!.stop());
      databaseUrl = postgres.url;
      amqpUrl = rabbit.url;
    } else {
      const admin = new pg.Client({ connectionString: TEST_URLS.postgres });
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
      await admin.end();
      closers.push(async () => {
        const cleanup = new pg.Client({ connectionString: TEST_URLS.postgres });
        await cleanup.connect();
        await cleanup.query(`DROP SCHEMA ${schema} CASCADE`);
        await cleanup.end();
      });
      databaseUrl = `${TEST_URLS.postgres}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      amqpUrl = TEST_URLS.rabbitmq;
    }
    const db = new PgSqlClient({ connectionString: databaseUrl, max: 4 });
    closers.push(() => db.close());
    await migrate(db);
    const queues = { requests: uniqueName("chaos_req"), results: uniqueName("chaos_res") };
    if (!options.ownPostgresAndRabbit) closers.push(() => deleteQueues(Object.values(queues), amqpUrl));

    const proxies = {
      postgres: await startTcpProxy(databaseUrl),
      redis: await startTcpProxy(redis.url),
      rabbitmq: await startTcpProxy(amqpUrl),
    };
    closers.push(async () => {
      for (const proxy of Object.values(proxies)) await proxy.close();
    });
    const ports = Object.fromEntries(await Promise.all(COMPONENTS.map(async (n) => [n, await freePort()] as const))) as Record<ComponentName, number>;
    const env: Record<string, string> = {
      DATABASE_URL: proxies.postgres.url,
      REDIS_URL: proxies.redis.url,
      AMQP_URL: proxies.rabbitmq.url,
      QUEUE_REQUESTS: queues.requests,
      QUEUE_RESULTS: queues.results,
      ML_SERVICE_URL: `http://127.0.0.1:${ports["ml-service"]}`,
      MODEL: STORIES_MODEL_PATH,
      ML_SERVICE_TOKEN: "chaos-and-e2e-internal-token",
      WORKER_RETRY_BASE_MS: "200",
      SWEEP_INTERVAL_MS: "500",
      SWEEP_UNPUBLISHED_AFTER_MS: "2000",
      SHUTDOWN_TIMEOUT_MS: "15000",
    };
    const procs = new Map<ComponentName, Proc>();
    const start = async (name: ComponentName) => {
      const proc = startProcess(name, [name], { ...env, PORT: String(ports[name]) });
      procs.set(name, proc);
      await waitForHttp(`http://127.0.0.1:${ports[name]}/livez`, proc, 120_000);
    };
    closers.push(async () => {
      for (const proc of procs.values()) await proc.stop();
    });
    log("starting the components, each its own process");
    await start("ml-service");
    await Promise.all(COMPONENTS.filter((n) => n !== "ml-service").map(start));

    const quotaRedis = new Redis(redis.url, { maxRetriesPerRequest: 50 });
    closers.push(async () => quotaRedis.disconnect());
    const quota = new RedisQuotaStore({ redis: quotaRedis, ledger: new SqlQuotaLedger(db) });
    const users = new SqlUserStore(db);
    let userCount = 0;
    return {
      redis,
      postgres,
      rabbit,
      proxies,
      gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
      db,
      quota,
      async createUser(limits) {
        return createTestUser(users, `chaos-${++userCount}-${Math.random().toString(36).slice(2, 8)}`, limits);
      },
      async kill(name) {
        const proc = procs.get(name);
        if (!proc) return;
        proc.child.kill("SIGKILL");
        await proc.stop();
      },
      async terminate(name) {
        return (await procs.get(name)?.stop(20_000)) ?? null;
      },
      start,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}


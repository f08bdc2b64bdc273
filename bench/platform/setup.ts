/** What the run owns (a schema, queues, a key prefix, a user), made at the start and removed at the end. */
import { Redis } from "ioredis";
import pg from "pg";
import { PgSqlClient } from "../../src/adapters/postgres/sql-client.js";
import { migrate } from "../../src/adapters/postgres/migrate.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { SqlUserStore } from "../../src/adapters/postgres/user-store.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { generateApiKey } from "../../src/domain/api-keys.js";
import { KEY_PREFIX, QUEUES, SCHEMA, UNLIMITED, URLS, log } from "./settings.js";
import { children, setPhase, stopChild } from "./children.js";
import { errorName } from "./load.js";

export interface Setup {
  db: PgSqlClient;
  requests: SqlRequestStore;
  users: SqlUserStore;
  redis: Redis;
  quota: RedisQuotaStore;
  userId: string;
  authorization: string;
}

export async function setup(): Promise<Setup> {
  const admin = new pg.Client({ connectionString: URLS.postgres });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  await admin.end();
  const db = new PgSqlClient({ connectionString: URLS.postgres, schema: SCHEMA, max: 10, applicationName: "ml-inference-bench" });
  await migrate(db);
  const users = new SqlUserStore(db);
  const userId = `bench-${process.pid}`;
  await users.upsertTier({ name: "bench-unlimited", limits: UNLIMITED });
  await users.createUser(userId, "bench-unlimited");
  const key = generateApiKey();
  await users.addApiKey(key.keyId, userId, key.keyHash);
  const redis = new Redis(URLS.redis, { connectionName: "ml-inference-bench" });
  const quota = new RedisQuotaStore({ redis, keyPrefix: KEY_PREFIX });
  state = { db, requests: new SqlRequestStore(db), users, redis, quota, userId, authorization: `Bearer ${key.key}` };
  return state as Setup;
}

let cleaned: Promise<void> | undefined;
let state: Partial<Setup> = {};

export function cleanup(): Promise<void> {
  return (cleaned ??= (async () => {
    setPhase("stop");
    const codes = await Promise.all(
      [...children.values()].map(async (c) => [c.name, await stopChild(c).catch(() => null)] as const),
    );
    const bad = codes.filter(([, code]) => code !== 0);
    if (bad.length > 0) log(`children that did not exit 0 on SIGTERM: ${bad.map(([n, c]) => `${n}=${c}`).join(", ")}`);
    await state.db?.close().catch(() => undefined);
    try {
      const admin = new pg.Client({ connectionString: URLS.postgres });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await admin.end();
    } catch (error) {
      log(`could not drop schema ${SCHEMA}: ${errorName(error)}`);
    }
    try {
      const amqp = await import("amqplib");
      const connection = await amqp.connect(URLS.amqp);
      const channel = await connection.createChannel();
      for (const q of Object.values(QUEUES)) for (const name of [q, `${q}.dead`]) await channel.deleteQueue(name).catch(() => undefined);
      await connection.close().catch(() => undefined);
    } catch (error) {
      log(`could not delete queues: ${errorName(error)}`);
    }
    const redis = state.redis ?? new Redis(URLS.redis);
    try {
      let cursor = "0";
      let deleted = 0;
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${KEY_PREFIX}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) deleted += await redis.unlink(...keys);
      } while (cursor !== "0");
      log(`cleanup: schema ${SCHEMA} dropped, queues deleted, ${deleted} Redis keys removed`);
    } catch (error) {
      log(`could not remove Redis keys: ${errorName(error)}`);
    } finally {
      redis.disconnect();
    }
  })());
}

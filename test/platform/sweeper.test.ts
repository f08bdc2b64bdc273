/**
 * The sweeper against a slow broker and a slow Redis (real PostgreSQL, RabbitMQ and Redis): while
 * it waits on them it holds no database connection, no open transaction and no row lock. Its one
 * pooled connection answers other queries, other transactions lock the claimed rows at once, and
 * an outcome stored meanwhile is not blocked (and wins over the timeout).
 */
import { deleteQueues } from "../support/cleanup.js";
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { Redis } from "ioredis";
import { PgSqlClient } from "../../src/adapters/postgres/sql-client.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { SqlOutbox } from "../../src/adapters/postgres/outbox.js";
import { SqlStaleRequests } from "../../src/adapters/postgres/stale-requests.js";
import { SqlBatchStore } from "../../src/adapters/postgres/batch-store.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { RedisEventBus } from "../../src/adapters/redis/event-bus.js";
import { RabbitMessageQueue } from "../../src/adapters/rabbitmq/message-queue.js";
import { Sweeper } from "../../src/components/gateway/sweeper.js";
import { parseRequestMessage } from "../../src/domain/contracts.js";
import type { EventBus, MessageQueue, NewRequest, QuotaStore } from "../../src/domain/ports.js";
import { silentLogger } from "../../src/observability/logger.js";
import { counter, createRegistry, gauge } from "../../src/observability/metrics.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { gate, withinSeconds, type Gate } from "../support/gate.js";
import { TEST_URLS, requireServices, uniqueName } from "../support/services.js";

const skip = await requireServices("postgres", "redis", "rabbitmq");

const MINUTE = 60_000;
const UNLIMITED = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const SWEEP = { sweepIntervalMs: MINUTE, sweepUnpublishedAfterMs: MINUTE, sweepLeaseMs: 10 * MINUTE, reservationTimeoutMs: 30 * MINUTE };

/** The broker, with every publish waiting on `gate` first. */
function slowPublish(queue: MessageQueue, g: Gate): MessageQueue {
  return new Proxy(queue, {
    get: (target, key, receiver) =>
      key === "publish"
        ? async (...args: Parameters<MessageQueue["publish"]>) => {
            await g.pass();
            return target.publish(...args);
          }
        : Reflect.get(target, key, receiver),
  });
}

/** The quota store, with every release waiting on `gate` first. */
function slowRelease(quota: QuotaStore, g: Gate): QuotaStore {
  return new Proxy(quota, {
    get: (target, key, receiver) =>
      key === "release"
        ? async (...args: Parameters<QuotaStore["release"]>) => {
            await g.pass();
            return target.release(...args);
          }
        : Reflect.get(target, key, receiver),
  });
}

describe("the sweeper waiting on a slow broker or Redis holds nothing in the database", { skip }, () => {
  let database: TestDatabase;
  /** The sweeper's own pool: one connection, so a connection it kept would starve every other query. */
  let sweeperDb: PgSqlClient;
  let appName: string;
  let observer: pg.Client;
  let rabbit: RabbitMessageQueue;
  let quota: RedisQuotaStore;
  let events: EventBus;
  const queueName = uniqueName("sweep_req");
  const requests = () => new SqlRequestStore(database.db);

  before(async () => {
    database = await freshPostgres();
    appName = uniqueName("sweeper");
    sweeperDb = new PgSqlClient({ connectionString: TEST_URLS.postgres, schema: database.schema, max: 1, applicationName: appName });
    observer = new pg.Client({ connectionString: database.url });
    await observer.connect();
    rabbit = await RabbitMessageQueue.connect({ url: TEST_URLS.rabbitmq, queues: [queueName] });
    const prefix = `${uniqueName("t")}:`;
    quota = new RedisQuotaStore({ redis: new Redis(TEST_URLS.redis), keyPrefix: prefix, ownsConnection: true });
    events = await RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix });
  });

  after(async () => {
    await sweeperDb?.close();
    await observer?.end();
    await rabbit?.close();
    await deleteQueues([queueName]);
    await quota?.close();
    await events?.close();
    await database?.drop();
  });

  function sweeper(deps: { queue?: MessageQueue; quota?: QuotaStore; db?: PgSqlClient } = {}): Sweeper {
    const db = deps.db ?? sweeperDb;
    const registry = createRegistry();
    return new Sweeper(SWEEP, {
      logger: silentLogger,
      quota: deps.quota ?? quota,
      requests: new SqlRequestStore(db),
      outbox: new SqlOutbox(db),
      stale: new SqlStaleRequests(db),
      batches: new SqlBatchStore(db),
      queue: deps.queue ?? rabbit,
      events,
      requestsQueue: queueName,
      now: () => new Date(),
      openGauge: gauge(registry, { name: "open", help: "open" }),
      published: counter(registry, { name: "published", help: "published", labelNames: ["queue"] }),
    });
  }

  function newRequest(userId: string, ageMs: number): NewRequest {
    return {
      requestId: randomUUID(),
      userId,
      model: "m",
      prompt: "Once upon a time",
      params: { maxLength: 10, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
      estimatedTokens: 17,
      window: { day: "2026-11-25", month: "2026-11" },
      createdAt: new Date(Date.now() - ageMs),
    };
  }

  /** While the sweeper waits: no connection of its pool in a transaction, the pool free, the rows unlocked. */
  async function assertDatabaseFree(requestIds: string[]): Promise<void> {
    const activity = await observer.query<{ state: string; query: string }>(
      "SELECT state, query FROM pg_stat_activity WHERE application_name = $1",
      [appName],
    );
    assert.ok(activity.rows.length >= 1, "the sweeper's connection is there");
    for (const row of activity.rows) assert.equal(row.state, "idle", `a sweeper connection is ${row.state}: ${row.query}`);
    const other = await withinSeconds(10, sweeperDb.query<{ n: number }>("SELECT count(*)::int AS n FROM inference_requests"));
    assert.ok((other.rows[0]?.n ?? 0) >= requestIds.length, "another query on the sweeper's one-connection pool runs");
    await observer.query("BEGIN");
    try {
      for (const id of requestIds) {
        const locked = await observer.query("SELECT request_id FROM inference_requests WHERE request_id = $1 FOR UPDATE NOWAIT", [id]);
        assert.equal(locked.rowCount, 1, "the claimed row can be locked at once");
      }
    } finally {
      await observer.query("ROLLBACK");
    }
  }

  it("a publish blocked on the broker: connections stay free, the row stays unlocked, another replica skips it", async () => {
    const request = newRequest(uniqueName("u"), 2 * MINUTE);
    await requests().insert(request);
    const broker = gate();
    const sweeping = sweeper({ queue: slowPublish(rabbit, broker) }).sweep();
    let swept: Awaited<typeof sweeping>;
    try {
      await withinSeconds(10, broker.reached);
      await assertDatabaseFree([request.requestId]);
      const claim = await observer.query<{ claimed: boolean }>(
        "SELECT claimed_until > now() AS claimed FROM inference_requests WHERE request_id = $1",
        [request.requestId],
      );
      assert.equal(claim.rows[0]?.claimed, true, "what keeps other replicas off the row is its lease");
      const replica = sweeper({ db: database.db as PgSqlClient });
      assert.deepEqual(await replica.sweep(), { republished: 0, expired: 0, expiredFiles: 0 }, "another replica does not publish it a second time");
      assert.equal((await requests().get(request.requestId))?.published, false, "not published before the broker confirms");
    } finally {
      // Whatever failed above, this sweep ends before the next test starts.
      broker.open();
      swept = await sweeping;
    }
    assert.deepEqual(swept, { republished: 1, expired: 0, expiredFiles: 0 });
    assert.equal((await requests().get(request.requestId))?.published, true);
    const published = await nextMessage(rabbit, queueName);
    assert.equal(published.request_id, request.requestId);
    assert.equal(published.prompt, request.prompt);
    assert.deepEqual(await sweeper().sweep(), { republished: 0, expired: 0, expiredFiles: 0 }, "published once");
  });

  it("a quota release blocked on Redis: connections stay free, rows stay unlocked, an outcome meanwhile wins", async () => {
    const userId = uniqueName("u");
    const abandoned = newRequest(userId, 60 * MINUTE);
    const finishing = newRequest(userId, 60 * MINUTE);
    await requests().insertMany([abandoned, finishing]);
    await new SqlOutbox(database.db).markPublished([abandoned.requestId, finishing.requestId]);
    for (const r of [abandoned, finishing]) {
      const reserved = await quota.reserve({ userId, requestId: r.requestId, tokens: r.estimatedTokens, limits: UNLIMITED, now: new Date() });
      assert.equal(reserved.ok, true);
    }
    const redis = gate();
    const sweeping = sweeper({ quota: slowRelease(quota, redis) }).sweep();
    let swept: Awaited<typeof sweeping>;
    try {
      await withinSeconds(10, redis.reached);
      await assertDatabaseFree([abandoned.requestId, finishing.requestId]);
      const usage = { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 };
      const stored = await withinSeconds(
        10,
        requests().finish({ requestId: finishing.requestId, status: "completed", at: new Date(), outputText: "done", outputs: null, usage, error: null, attempt: 1 }),
      );
      assert.equal(stored.changed, true, "the outcome is stored while the sweeper waits");
      assert.equal((await requests().get(abandoned.requestId))?.status, "queued", "not failed before its reservation is released");
    } finally {
      redis.open();
      swept = await sweeping;
    }
    assert.deepEqual(swept, { republished: 0, expired: 1, expiredFiles: 0 });
    const expired = await requests().get(abandoned.requestId);
    assert.equal(expired?.status, "failed");
    assert.equal(expired?.error?.code, "timeout");
    assert.equal((await requests().get(finishing.requestId))?.status, "completed", "the outcome that arrived meanwhile wins");
    assert.equal((await quota.usage(userId, new Date())).daily.tokensReserved, 0, "the reservations are released");
  });
});

async function nextMessage(queue: MessageQueue, name: string): Promise<Record<string, unknown>> {
  let received!: (body: Buffer) => void;
  const body = new Promise<Buffer>((resolve) => (received = resolve));
  const consumer = await queue.consume(
    name,
    async (message) => {
      received(message);
      return "ack";
    },
    { prefetch: 1 },
  );
  const message = await withinSeconds(10, body);
  await consumer.drain();
  const parsed = parseRequestMessage(message);
  assert.ok(parsed.ok, "a valid request message");
  return parsed.value as unknown as Record<string, unknown>;
}


/**
 * Redis loses its data (killed, restarted empty): the quota counters come back from PostgreSQL (the
 * ledger and the open requests) before anyone is admitted against them, so no quota is handed out
 * twice. Runs a Redis server of its own on another port and kills only that one.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { SqlQuotaLedger } from "../../src/adapters/postgres/quota-ledger.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { quotaWindow } from "../../src/domain/quota-windows.js";
import type { NewRequest, QuotaLedger, QuotaLimits } from "../../src/domain/ports.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { requireServices } from "../support/services.js";
import { startRedisServer, type OwnRedis } from "../support/own-servers.js";

const skip = await requireServices("postgres");
const params = { maxLength: 10, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 };
const LIMITS: QuotaLimits = { dailyRequests: 50, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

describe("quota survives Redis losing its data", { skip }, () => {
  let database: TestDatabase;
  let server: OwnRedis;
  let redis: Redis;
  let requests: SqlRequestStore;
  let snapshots = 0;
  let quota: RedisQuotaStore;

  before(async () => {
    database = await freshPostgres();
    server = await startRedisServer();
    redis = new Redis(server.url, { maxRetriesPerRequest: 20 });
    requests = new SqlRequestStore(database.db);
    const ledger = new SqlQuotaLedger(database.db);
    // Counts the rebuilds' reads of the ledger (the real ledger answers them).
    const counting: QuotaLedger = { snapshots: (users, month) => ((snapshots += users.length), ledger.snapshots(users, month)) };
    quota = new RedisQuotaStore({ redis, ledger: counting });
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
    await database?.drop();
  });

  /** What the gateway does: reserve, then store the request (queued). */
  async function admit(userId: string, tokens: number): Promise<string | null> {
    const now = new Date();
    const requestId = randomUUID();
    const reserved = await quota.reserve({ userId, requestId, tokens, limits: LIMITS, now });
    if (!reserved.ok) return null;
    const request: NewRequest = { requestId, userId, model: "m", prompt: "p", params, estimatedTokens: tokens, window: reserved.window, createdAt: now };
    await requests.insert(request);
    return requestId;
  }

  /** What the collector does: store the outcome with its ledger row, then settle. */
  async function complete(userId: string, requestId: string, total: number): Promise<void> {
    await requests.finish({
      requestId, status: "completed", at: new Date(), outputText: "x", outputs: null,
      usage: { prompt_tokens: 1, completion_tokens: total - 1, total_tokens: total }, error: null, attempt: 1,
    });
    assert.equal(await quota.settle({ userId, requestId, actualTokens: total }), "settled");
  }

  it("40 of 50 used, Redis restarted empty, 60 more sent: exactly 10 admitted; counters = ledger after", async () => {
    const user = "loss-user";
    const first: string[] = [];
    for (let i = 0; i < 40; i++) first.push((await admit(user, 30)) as string);
    for (const id of first.slice(0, 35)) await complete(user, id, 7);
    // 35 completed (245 tokens), 5 still open (150 tokens reserved).
    const before = await quota.usage(user, new Date());
    assert.deepEqual(before.daily, { requests: 40, tokensUsed: 245, tokensReserved: 150 });
    assert.equal(snapshots, 1, "the first reserve of a user without the marker rebuilds once (one user read)");

    await server.restartEmpty();
    assert.equal(await redis.dbsize(), 0, "Redis came back empty");

    const admitted = (await Promise.all(Array.from({ length: 60 }, () => admit(user, 30)))).filter(Boolean);
    assert.equal(admitted.length, 10, "exactly the 10 requests left in the day");
    assert.equal(snapshots, 2, "60 concurrent admissions after the loss share one rebuild");

    // The 5 open from before the loss are still charged once, exactly as the ledger says.
    for (const id of first.slice(35)) await complete(user, id, 9);
    const ledger = (await new SqlQuotaLedger(database.db).snapshots([user], quotaWindow(new Date()).month)).get(user)!;
    const settled = ledger.settledDays.reduce((sum, d) => ({ requests: sum.requests + d.requests, tokens: sum.tokens + d.tokens }), { requests: 0, tokens: 0 });
    const after = await quota.usage(user, new Date());
    assert.deepEqual(settled, { requests: 40, tokens: 245 + 45 });
    assert.deepEqual(after.daily, { requests: 50, tokensUsed: settled.tokens, tokensReserved: 10 * 30 });
    assert.deepEqual(after.monthly, after.daily);
  });

  it("the quota endpoint's read rebuilds too, and a settle after the loss charges once", async () => {
    const user = "loss-reader";
    const id = (await admit(user, 20)) as string;
    await server.restartEmpty();
    assert.deepEqual((await quota.usage(user, new Date())).daily, { requests: 1, tokensUsed: 0, tokensReserved: 20 });
    await server.restartEmpty();
    await requests.finish({
      requestId: id, status: "completed", at: new Date(), outputText: "x", outputs: null,
      usage: { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 }, error: null, attempt: 1,
    });
    // Rebuilt after the ledger row was written: the usage is there once and the settle finds nothing open.
    assert.equal(await quota.settle({ userId: user, requestId: id, actualTokens: 5 }), "unknown_reservation");
    assert.deepEqual((await quota.usage(user, new Date())).daily, { requests: 1, tokensUsed: 5, tokensReserved: 0 });
  });
});

/**
 * Edges of the collector's public behaviour (beside collector-outcomes.test.ts): what a final
 * outcome may carry that does not belong to its status, settling exactly once, unknown requests.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createCollector, type Collector } from "../../src/components/collector/index.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { MemoryEventBus } from "../../src/adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import type { RequestEvent } from "../../src/domain/contracts.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry, type Registry } from "../../src/observability/metrics.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { requireServices } from "../support/services.js";

const skip = await requireServices("postgres");
const UNLIMITED = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const NOW = new Date("2031-05-06T07:08:09.000Z");

describe("collector: edges of storing outcomes", { skip }, () => {
  let database: TestDatabase;
  let requests: SqlRequestStore;
  let quota: MemoryQuotaStore;
  let events: MemoryEventBus;
  let queue: MemoryMessageQueue;
  let registry: Registry;
  let collector: Collector;

  before(async () => {
    database = await freshPostgres();
    requests = new SqlRequestStore(database.db);
    quota = new MemoryQuotaStore();
    events = new MemoryEventBus();
    queue = new MemoryMessageQueue();
    registry = createRegistry();
    collector = createCollector(
      { port: 0, prefetch: 4 },
      { logger: silentLogger, registry, queue, quota, requests, events, resultsQueue: "results" },
    );
    await collector.start();
  });
  after(async () => {
    await collector?.stop();
    await queue?.close();
    await database?.drop();
  });

  /** A request stored and reserved as admission leaves it (30 tokens reserved). */
  async function admitted(): Promise<{ requestId: string; userId: string }> {
    const requestId = randomUUID();
    const userId = `u-${randomUUID().slice(0, 8)}`;
    const reservation = await quota.reserve({ userId, requestId, tokens: 30, limits: UNLIMITED, now: NOW });
    assert.ok(reservation.ok);
    await requests.insert({
      requestId,
      userId,
      model: "default",
      prompt: "p",
      params: { maxLength: 5, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
      estimatedTokens: 30,
      window: reservation.window,
      createdAt: NOW,
    });
    return { requestId, userId };
  }

  /** Publishes an outcome and resolves with the final event the collector sends when done with it. */
  async function deliver(outcome: Record<string, unknown>): Promise<RequestEvent> {
    let resolve!: (event: RequestEvent) => void;
    const final = new Promise<RequestEvent>((r) => (resolve = r));
    const unsubscribe = await events.subscribe(outcome.request_id as string, (event) => {
      if (event.final) resolve(event);
    });
    await queue.publish("results", Buffer.from(JSON.stringify({ v: 1, attempt: 1, at: NOW.toISOString(), ...outcome })));
    try {
      return await final;
    } finally {
      await unsubscribe();
    }
  }

  async function metric(name: string): Promise<string> {
    return (await registry.metrics()).split("\n").filter((line) => line.startsWith(name)).join("\n");
  }

  it("a completed outcome without text stores empty text; a failed one keeps no text, outputs or usage", async () => {
    const empty = await admitted();
    await deliver({ request_id: empty.requestId, user_id: empty.userId, status: "completed", usage: { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 } });
    assert.equal((await requests.get(empty.requestId))?.outputText, "");
    const failed = await admitted();
    const event = await deliver({
      request_id: failed.requestId,
      user_id: failed.userId,
      status: "failed",
      output_text: "partial",
      outputs: ["partial"],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      error: { code: "ml_timeout", message: "slow" },
    });
    assert.equal(event.status, "failed");
    const stored = await requests.get(failed.requestId);
    assert.equal(stored?.status, "failed");
    assert.equal(stored?.outputText, null);
    assert.equal(stored?.outputs, null);
    assert.equal(stored?.usage, null);
    assert.deepEqual((await quota.usage(failed.userId, NOW)).daily, { requests: 0, tokensUsed: 0, tokensReserved: 0 });
  });

  it("a completed outcome delivered twice settles its tokens once", async () => {
    const { requestId, userId } = await admitted();
    const outcome = { request_id: requestId, user_id: userId, status: "completed", output_text: "x", usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } };
    await deliver(outcome);
    const settled = await metric("tokens_settled_total");
    const event = await deliver(outcome);
    assert.equal(event.status, "completed");
    assert.equal(await metric("tokens_settled_total"), settled);
    assert.deepEqual((await quota.usage(userId, NOW)).daily, { requests: 1, tokensUsed: 5, tokensReserved: 0 });
  });

  it("an outcome for an unknown request is neither a duplicate nor told to anyone", async () => {
    const unknown = randomUUID();
    const told: RequestEvent[] = [];
    const unsubscribe = await events.subscribe(unknown, (event) => told.push(event));
    const duplicates = await metric("results_duplicates_total");
    const outcome = { v: 1, request_id: unknown, user_id: "nobody", status: "completed", output_text: "x", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, attempt: 1, at: NOW.toISOString() };
    assert.equal(await collector.handle(Buffer.from(JSON.stringify(outcome))), "ack");
    await unsubscribe();
    assert.deepEqual(told, []);
    assert.equal(await metric("results_duplicates_total"), duplicates);
    assert.equal(await requests.get(unknown), null);
  });
});

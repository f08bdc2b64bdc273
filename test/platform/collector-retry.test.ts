/**
 * An outcome the collector cannot store (database down) is retried later through the delayed-retry
 * queue with a counted attempt, and dead-lettered after the last attempt — never spun on.
 */
import { MemoryRequestStreams } from "../../src/adapters/memory/request-streams.js";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createCollector } from "../../src/components/collector/index.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { MemoryEventBus } from "../../src/adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { freshPostgres } from "../support/databases.js";
import { requireServices } from "../support/services.js";

const skip = await requireServices("postgres");

describe("collector retries outcomes it cannot store", { skip }, () => {
  it("delays and counts attempts, then dead-letters", async () => {
    const database = await freshPostgres();
    await database.drop(); // every store call now fails
    const queue = new MemoryMessageQueue();
    const collector = createCollector(
      { port: 0, prefetch: 4, lingerMs: 0 },
      {
        logger: silentLogger,
        registry: createRegistry(),
        queue,
        streams: new MemoryRequestStreams(),
        quota: new MemoryQuotaStore(),
        requests: new SqlRequestStore(database.db),
        events: new MemoryEventBus(),
        resultsQueue: "results",
      },
    );
    const outcome = Buffer.from(
      JSON.stringify({
        v: 1,
        request_id: randomUUID(),
        user_id: "u",
        status: "completed",
        output_text: "x",
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        attempt: 1,
        at: new Date().toISOString(),
      }),
    );
    const seen: Array<{ headers: Record<string, string>; at: number }> = [];
    const consumer = await queue.consume(
      "results",
      async (_body, meta) => {
        seen.push({ headers: meta.headers, at: Date.now() });
        return "ack";
      },
      { prefetch: 1 },
    );
    /** Hands the outcome to the collector and waits for its retry to come back on the queue. */
    const retried = async (headers: Record<string, string>) => {
      const count = seen.length;
      const handedAt = Date.now();
      assert.equal(await collector.handle(outcome, { headers }), "ack");
      const deadline = handedAt + 5_000;
      while (seen.length === count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const retry = seen[count];
      assert.ok(retry, "the outcome came back through the delayed-retry queue");
      return { headers: retry.headers, afterMs: retry.at - handedAt };
    };
    const first = await retried({});
    assert.equal(first.headers["x-collect-attempts"], "1", "retried once, later, with the attempt counted");
    assert.ok(first.afterMs >= 500, `the first retry waits 500 ms, came after ${first.afterMs} ms`);
    const second = await retried(first.headers);
    assert.equal(second.headers["x-collect-attempts"], "2");
    assert.ok(second.afterMs >= 1_000, `the delay doubles with each attempt, came after ${second.afterMs} ms`);
    await consumer.drain();
    assert.equal(await collector.handle(outcome, { headers: { "x-collect-attempts": "7" } }), "dead_letter");
    await queue.close();
  });

  it("in a bundle, only the outcomes that failed come back for another attempt", async () => {
    const database = await freshPostgres();
    const queue = new MemoryMessageQueue();
    const requests = new SqlRequestStore(database.db);
    const quota = new MemoryQuotaStore();
    const NOW = new Date();
    const UNLIMITED = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
    // Settling fails for one user only (its quota store is down, say).
    const failing = Object.assign(Object.create(quota) as MemoryQuotaStore, {
      settle: (input: Parameters<MemoryQuotaStore["settle"]>[0]) => (input.userId === "broken" ? Promise.reject(new Error("quota store down")) : quota.settle(input)),
    });
    const collector = createCollector(
      { port: 0, prefetch: 4, lingerMs: 0 },
      { logger: silentLogger, registry: createRegistry(), queue, streams: new MemoryRequestStreams(), quota: failing, requests, events: new MemoryEventBus(), resultsQueue: "results" },
    );
    const outcomes = [];
    for (const userId of ["fine", "broken"]) {
      const requestId = randomUUID();
      const reservation = await quota.reserve({ userId, requestId, tokens: 30, limits: UNLIMITED, now: NOW });
      assert.ok(reservation.ok);
      await requests.insert({
        requestId, userId, model: "default", prompt: "p", estimatedTokens: 30, window: reservation.window, createdAt: NOW,
        params: { maxLength: 5, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
      });
      outcomes.push({ v: 1, request_id: requestId, user_id: userId, status: "completed", output_text: "x", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, attempt: 1, at: NOW.toISOString() });
    }
    const retries: Buffer[] = [];
    const consumer = await queue.consume("results", async (body) => {
      retries.push(body);
      return "ack";
    }, { prefetch: 1 });
    assert.equal(await collector.handle(Buffer.from(JSON.stringify({ v: 1, outcomes }))), "ack");
    const deadline = Date.now() + 5_000;
    while (retries.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await consumer.drain();
    assert.deepEqual(JSON.parse(retries[0]!.toString()), { v: 1, outcomes: [outcomes[1]] }, "the failed outcome alone comes back");
    assert.deepEqual((await quota.usage("fine", NOW)).daily, { requests: 1, tokensUsed: 2, tokensReserved: 0 }, "the other was settled");
    await queue.close();
    await database.drop();
  });
});

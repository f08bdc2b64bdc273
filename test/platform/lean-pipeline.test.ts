/**
 * The lean pipeline (issue 11, item 6): `processing` is transient state, not a message — the worker
 * publishes one final outcome per request, carrying when the call started, over keep-alive
 * connections to the ML Service; the collector commits the outcomes that arrive together in one
 * statement, and a duplicate inside one batch still changes nothing.
 */
import { MemoryRequestStreams } from "../../src/adapters/memory/request-streams.js";
import { MemoryRunStates } from "../../src/adapters/memory/run-states.js";
import { toWire } from "../../src/domain/generation-params.js";
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createCollector } from "../../src/components/collector/index.js";
import { createWorker } from "../../src/components/worker/index.js";
import { startMlService } from "../../src/components/ml-service/index.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { MemoryEventBus } from "../../src/adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import { loadConfig } from "../../src/config.js";
import { encodeMessage, parseOutcomes, type OutcomeMessage, type RequestEvent, type RequestMessage } from "../../src/domain/contracts.js";
import type { FinishInput, QuotaLimits } from "../../src/domain/ports.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { freshPglite } from "../support/databases.js";
import { STORIES_MODEL_PATH, requireStoriesModel } from "../support/model.js";

const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const params = { maxLength: 4, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 };

describe("the worker publishes one final outcome per request", { skip: requireStoriesModel() }, () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it("no processing message; started_at travels in the outcome; calls share keep-alive connections", async () => {
    const config = loadConfig({}, "all");
    const ml = await startMlService(
      { ...config.mlService, port: 0, host: "127.0.0.1", model: STORIES_MODEL_PATH, batchSequences: 4 },
      { logger: silentLogger, registry: createRegistry() },
    );
    stops.push(() => ml.stop());
    await ml.ready;
    let connections = 0;
    ml.app.server.on("connection", () => connections++);
    const queue = new MemoryMessageQueue();
    stops.push(() => queue.close());
    const worker = createWorker(
      { ...config.worker, mlServiceUrl: ml.url, prefetch: 1 },
      { logger: silentLogger, registry: createRegistry(), queue, streams: new MemoryRequestStreams(), runs: new MemoryRunStates(), requestsQueue: "req", resultsQueue: "res" },
    );
    const outcomes: OutcomeMessage[] = [];
    const results = await queue.consume(
      "res",
      async (body) => {
        const parsed = parseOutcomes(body);
        assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
        assert.deepEqual(parsed.value.problems, []);
        outcomes.push(...parsed.value.outcomes);
        return "ack";
      },
      { prefetch: 16 },
    );
    await worker.start();
    const before = Date.now();
    const ids = Array.from({ length: 4 }, () => randomUUID());
    for (const id of ids) {
      const message: RequestMessage = {
        v: 1, request_id: id, user_id: "u", model: "default", prompt: "Once upon a time", params: toWire(params), reserved_tokens: 20, attempt: 1,
        created_at: new Date().toISOString(),
      };
      await queue.publish("req", encodeMessage(message));
    }
    const deadline = Date.now() + 30_000;
    while (outcomes.length < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await worker.stop();
    await results.drain();
    assert.deepEqual(outcomes.map((o) => o.request_id).sort(), [...ids].sort(), "exactly one outcome per request, no processing report");
    for (const o of outcomes) {
      assert.equal(o.status, "completed");
      assert.ok(o.started_at, "the start of the call travels in the final outcome");
      const started = Date.parse(o.started_at);
      assert.ok(started >= before - 1000 && started <= Date.parse(o.at), "started before it finished");
    }
    assert.equal(connections, 1, "one after the other, the calls reuse one keep-alive connection");
  });
});

describe("the collector commits outcomes in natural batches", () => {
  it("many outcomes at once: fewer statements than outcomes, each stored and settled once, a duplicate in the same batch ignored", async () => {
    const database = await freshPglite();
    const inner = new SqlRequestStore(database.db);
    // The real store, counting how the collector calls it.
    const batches: number[] = [];
    const requests = Object.assign(Object.create(inner) as SqlRequestStore, {
      finishMany: (inputs: FinishInput[]) => {
        batches.push(inputs.length);
        return inner.finishMany(inputs);
      },
    });
    const quota = new MemoryQuotaStore();
    const events = new MemoryEventBus();
    const queue = new MemoryMessageQueue();
    const registry = createRegistry();
    const collector = createCollector({ port: 0, prefetch: 64, lingerMs: 5 }, { logger: silentLogger, registry, queue, quota, requests, events, streams: new MemoryRequestStreams(), resultsQueue: "res" });
    const now = new Date();
    const ids = Array.from({ length: 20 }, () => randomUUID());
    for (const id of ids) {
      const reserved = await quota.reserve({ userId: "u", requestId: id, tokens: 20, limits: UNLIMITED, now });
      assert.ok(reserved.ok);
      await inner.insert({ requestId: id, userId: "u", model: "m", prompt: "p", params, estimatedTokens: 20, window: reserved.window, createdAt: now });
    }
    const heard: RequestEvent[] = [];
    for (const id of ids) await events.subscribe(id, (e) => heard.push(e));
    const outcome = (id: string, total: number): Buffer =>
      encodeMessage({
        v: 1, request_id: id, user_id: "u", status: "completed", output_text: "x", attempt: 1,
        usage: { prompt_tokens: 1, completion_tokens: total - 1, total_tokens: total }, started_at: now.toISOString(), at: new Date().toISOString(),
      });
    const verdicts = await Promise.all([...ids.map((id) => collector.handle(outcome(id, 5))), collector.handle(outcome(ids[0]!, 9))]);
    assert.ok(verdicts.every((v) => v === "ack"));
    assert.equal(batches.reduce((a, b) => a + b, 0), ids.length + 1, "every outcome went through finishMany");
    assert.ok(batches.length < ids.length, `outcomes arriving together share statements (batches: ${batches.join(", ")})`);
    for (const id of ids) {
      const stored = await inner.get(id);
      assert.equal(stored?.status, "completed");
      assert.equal(stored?.usage?.total_tokens, 5, "the first outcome of an id is the one stored");
      assert.deepEqual(stored?.startedAt, now);
    }
    const ledger = await database.db.query<{ n: number; t: number }>("SELECT COUNT(*)::int AS n, SUM(total_tokens)::int AS t FROM usage_ledger");
    assert.deepEqual(ledger.rows[0], { n: ids.length, t: 5 * ids.length });
    const usage = await quota.usage("u", now);
    assert.equal(usage.daily.tokensUsed, 5 * ids.length, "each reservation settled once, with the stored count");
    assert.equal(usage.daily.tokensReserved, 0);
    await new Promise((r) => setImmediate(r)); // the in-process bus delivers on a later tick, as a server would
    assert.deepEqual(new Set(heard.filter((e) => e.final && e.status === "completed").map((e) => e.request_id)), new Set(ids), "every waiting client is told");
    const text = await registry.metrics();
    assert.match(text, /results_collected_total\{status="completed"\} 20\b/);
    assert.match(text, /results_duplicates_total 1\b/);
    await queue.close();
    await database.drop();
  });
});

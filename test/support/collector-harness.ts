/**
 * A collector on real PostgreSQL with in-memory quota, events, queue and streams, and the two moves
 * its tests make: a request stored and reserved as admission leaves it, and an outcome published to
 * the results queue, awaited through the final event the collector sends when done with it.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { MemoryRequestStreams } from "../../src/adapters/memory/request-streams.js";
import { createCollector, type Collector } from "../../src/components/collector/index.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { MemoryEventBus } from "../../src/adapters/memory/event-bus.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import type { RequestEvent } from "../../src/domain/contracts.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry, type Registry } from "../../src/observability/metrics.js";
import { freshPostgres, type TestDatabase } from "./databases.js";

export const UNLIMITED = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
export const NOW = new Date("2031-05-06T07:08:09.000Z");

export interface CollectorHarness {
  database: TestDatabase;
  requests: SqlRequestStore;
  quota: MemoryQuotaStore;
  events: MemoryEventBus;
  queue: MemoryMessageQueue;
  streams: MemoryRequestStreams;
  registry: Registry;
  collector: Collector;
  /** A request stored and reserved as admission leaves it (30 tokens reserved). */
  admitted(): Promise<{ requestId: string; userId: string }>;
  /** Publishes an outcome and resolves with the final event the collector sends when done with it. */
  deliver(outcome: Record<string, unknown>): Promise<RequestEvent>;
  /** The lines of the metric's samples. */
  metric(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function collectorHarness(): Promise<CollectorHarness> {
  const database = await freshPostgres();
  const requests = new SqlRequestStore(database.db);
  const quota = new MemoryQuotaStore();
  const events = new MemoryEventBus();
  const queue = new MemoryMessageQueue();
  const streams = new MemoryRequestStreams();
  const registry = createRegistry();
  const collector = createCollector(
    { port: 0, prefetch: 4, lingerMs: 0 },
    { logger: silentLogger, registry, queue, quota, requests, events, streams, resultsQueue: "results" },
  );
  await collector.start();
  return {
    database, requests, quota, events, queue, streams, registry, collector,
    async admitted() {
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
    },
    async deliver(outcome) {
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
    },
    async metric(name) {
      return (await registry.metrics()).split("\n").filter((line) => line.startsWith(name)).join("\n");
    },
    async close() {
      await collector.stop();
      await queue.close();
      await database.drop();
    },
  };
}

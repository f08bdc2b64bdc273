/**
 * WORKER_CONCURRENCY below WORKER_PREFETCH: the worker never makes more model calls at once than
 * its concurrency, and a call's slot is free as soon as the call ends, so the next message held
 * starts its call while the first one's outcome is still waiting for the broker's confirm (held here
 * by a gate on the results queue); the outcomes that finish meanwhile go out together in the next
 * message. Real ML Service, real worker, in-process queue.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { MemoryRequestStreams } from "../../src/adapters/memory/request-streams.js";
import { MemoryRunStates } from "../../src/adapters/memory/run-states.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import { toWire } from "../../src/domain/generation-params.js";
import { createWorker } from "../../src/components/worker/index.js";
import { startMlService } from "../../src/components/ml-service/index.js";
import { loadConfig } from "../../src/config.js";
import { encodeMessage, parseOutcomes, type RequestMessage } from "../../src/domain/contracts.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { STORIES_MODEL_PATH, requireStoriesModel } from "../support/model.js";
import { waitFor, waitForAsync } from "../support/wait.js";

const params = { maxLength: 4, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 };

describe("the worker's call slots", { skip: requireStoriesModel() }, () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it("one call at a time, and the next starts while the last outcome waits for its confirm", async () => {
    const config = loadConfig({}, "all");
    const ml = await startMlService({ ...config.mlService, port: 0, host: "127.0.0.1", model: STORIES_MODEL_PATH, batchSequences: 4 }, { logger: silentLogger, registry: createRegistry() });
    stops.push(() => ml.stop());
    await ml.ready;
    let calling = 0;
    let mostAtOnce = 0;
    let calls = 0;
    ml.app.server.on("request", (request, response) => {
      if (request.url !== "/inference") return;
      calls++;
      calling++;
      mostAtOnce = Math.max(mostAtOnce, calling);
      response.once("close", () => calling--);
    });
    const inner = new MemoryMessageQueue();
    stops.push(() => inner.close());
    // The results queue confirms only when the test opens the gate.
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    stops.push(async () => open()); // opened first on the way out, so a failed test still stops
    let held = 0;
    const bundles: number[] = [];
    const queue = Object.assign(Object.create(inner) as MemoryMessageQueue, {
      publish: async (name: string, body: Buffer, options?: Parameters<MemoryMessageQueue["publish"]>[2]) => {
        if (name === "res") {
          held++;
          const parsed = parseOutcomes(body);
          bundles.push(parsed.ok ? parsed.value.outcomes.length : 0);
          await gate;
        }
        return inner.publish(name, body, options);
      },
    });
    const registry = createRegistry();
    /** Model calls the worker has seen end: each one's outcome is handed to the publisher at that moment. */
    const callsEnded = async () => Number(/worker_model_call_seconds_count (\d+)/.exec(await registry.metrics())?.[1] ?? 0);
    const worker = createWorker(
      { ...config.worker, mlServiceUrl: ml.url, prefetch: 3, concurrency: 1 },
      { logger: silentLogger, registry, queue, streams: new MemoryRequestStreams(), runs: new MemoryRunStates(), requestsQueue: "req", resultsQueue: "res" },
    );
    await worker.start();
    stops.push(() => worker.stop());
    for (let i = 0; i < 3; i++) {
      const message: RequestMessage = {
        v: 1, request_id: randomUUID(), user_id: "u", model: "default", prompt: "Once upon a time", params: toWire(params), reserved_tokens: 20, attempt: 1,
        created_at: new Date().toISOString(),
      };
      await inner.publish("req", encodeMessage(message));
    }
    await waitForAsync("every call to run while no outcome is confirmed", async () => calls === 3 && (await callsEnded()) === 3, 10_000);
    assert.equal(mostAtOnce, 1, "never two calls at once");
    // The first message may carry one outcome or two (while messages wait for the slot an outcome
    // lingers a few ms for others); the rest wait for its confirm.
    assert.equal(bundles.length, 1, "the later outcomes wait for the first message's confirm");
    open();
    const sum = () => bundles.reduce((a, b) => a + b, 0);
    await waitFor("every outcome published", () => sum() === 3, 10_000);
    assert.equal(bundles.length, 2, `the outcomes that finished during the held confirm share one message: ${JSON.stringify(bundles)}`);
  });

  it("a cancel of a message claimed while it waits for its slot ends it without a call", async () => {
    const config = loadConfig({}, "all");
    const ml = await startMlService({ ...config.mlService, port: 0, host: "127.0.0.1", model: STORIES_MODEL_PATH, batchSequences: 4 }, { logger: silentLogger, registry: createRegistry() });
    stops.push(() => ml.stop());
    await ml.ready;
    const called: string[] = [];
    let release: () => void = () => undefined;
    const firstCallHeld = new Promise<void>((resolve) => (release = resolve));
    stops.push(async () => release());
    // The first message's claim is held by the test, so the second one waits, claimed, in line.
    ml.app.server.prependListener("request", (request) => {
      if (request.url === "/inference") called.push(request.url);
    });
    const queue = new MemoryMessageQueue();
    stops.push(() => queue.close());
    const runs = new MemoryRunStates();
    const claimed = new Set<string>();
    const slowRuns = Object.assign(Object.create(runs) as MemoryRunStates, {
      claimRun: async (id: string) => {
        const answer = await runs.claimRun(id);
        claimed.add(id);
        if (id === ids[0]) await firstCallHeld;
        return answer;
      },
    });
    const ids = [randomUUID(), randomUUID()];
    const outcomes: Array<{ request_id: string; status: string; usage?: { total_tokens: number } }> = [];
    const results = await queue.consume("res", async (body) => {
      const parsed = parseOutcomes(body);
      if (parsed.ok) outcomes.push(...parsed.value.outcomes);
      return "ack";
    }, { prefetch: 4 });
    stops.push(() => results.drain());
    const worker = createWorker(
      { ...config.worker, mlServiceUrl: ml.url, prefetch: 2, concurrency: 1 },
      { logger: silentLogger, registry: createRegistry(), queue, streams: new MemoryRequestStreams(), runs: slowRuns, requestsQueue: "req", resultsQueue: "res" },
    );
    await worker.start();
    stops.push(() => worker.stop());
    for (const id of ids) {
      const message: RequestMessage = {
        v: 1, request_id: id, user_id: "u", model: "default", prompt: "Once upon a time", params: toWire(params), reserved_tokens: 20, attempt: 1,
        created_at: new Date().toISOString(),
      };
      await queue.publish("req", encodeMessage(message));
    }
    // The second message is claimed as it arrives (the line before it is short), before any slot frees.
    await waitFor("the second message to be claimed", () => claimed.has(ids[1]!), 10_000);
    assert.equal(await runs.cancel(ids[1]!), "running", "claimed while it waits for its slot");
    release();
    await waitFor("both outcomes", () => outcomes.length === 2, 10_000);
    const second = outcomes.find((o) => o.request_id === ids[1]);
    assert.equal(second?.status, "cancelled");
    assert.equal(second?.usage?.total_tokens ?? 0, 0, "nothing processed, nothing charged");
    assert.equal(called.length, 1, "the cancelled message made no model call");
  });
});

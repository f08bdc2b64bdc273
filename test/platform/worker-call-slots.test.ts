/**
 * WORKER_CONCURRENCY below WORKER_PREFETCH: the worker never makes more model calls at once than
 * its concurrency, and a call's slot is free as soon as the call ends, so the next message held
 * starts its call while the first one's outcome is still waiting for the broker's confirm (held here
 * by a gate on the results queue). Real ML Service, real worker, in-process queue.
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
import { encodeMessage, type RequestMessage } from "../../src/domain/contracts.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { STORIES_MODEL_PATH, requireStoriesModel } from "../support/model.js";
import { waitFor } from "../support/wait.js";

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
    const queue = Object.assign(Object.create(inner) as MemoryMessageQueue, {
      publish: async (name: string, body: Buffer, options?: Parameters<MemoryMessageQueue["publish"]>[2]) => {
        if (name === "res") {
          held++;
          await gate;
        }
        return inner.publish(name, body, options);
      },
    });
    const worker = createWorker(
      { ...config.worker, mlServiceUrl: ml.url, prefetch: 3, concurrency: 1 },
      { logger: silentLogger, registry: createRegistry(), queue, streams: new MemoryRequestStreams(), runs: new MemoryRunStates(), requestsQueue: "req", resultsQueue: "res" },
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
    await waitFor("every call to run while no outcome is confirmed", () => held === 3, 10_000);
    assert.equal(calls, 3, "each message's call ran though the first outcome was not confirmed yet");
    assert.equal(mostAtOnce, 1, "never two calls at once");
    open();
  });
});

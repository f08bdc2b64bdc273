import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BatchLoader, Batcher } from "./batching.js";

describe("Batcher", () => {
  it("writes at once when idle and gathers what arrives while a batch is in flight", async () => {
    const batches: number[][] = [];
    let release: (() => void) | undefined;
    const batcher = new Batcher<number>(
      async (items) => {
        batches.push(items);
        if (batches.length === 1) await new Promise<void>((r) => (release = r));
      },
      { maxBatch: 3, maxInFlight: 1 },
    );
    const first = batcher.add(0);
    const rest = [1, 2, 3, 4].map((n) => batcher.add(n));
    assert.deepEqual(batches, [[0]]);
    release!();
    await Promise.all([first, ...rest]);
    assert.deepEqual(batches, [[0], [1, 2, 3], [4]]);
  });

  it("a failed batch rejects exactly its own callers", async () => {
    const batcher = new Batcher<number>(
      async (items) => {
        if (items.includes(2)) throw new Error("boom");
      },
      { maxBatch: 1, maxInFlight: 2 },
    );
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.add(n)));
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
  });

  it("with a linger, items that arrive one by one within it share one batch; a full batch goes at once", async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number>(async (items) => void batches.push(items), { maxBatch: 4, maxInFlight: 2, lingerMs: 30 });
    const first = batcher.add(1);
    await new Promise((r) => setImmediate(r));
    const second = batcher.add(2);
    assert.deepEqual(batches, [], "a batch that is not full waits for its linger");
    await Promise.all([first, second]);
    assert.deepEqual(batches, [[1, 2]]);
    const full = [3, 4, 5, 6].map((n) => batcher.add(n));
    assert.deepEqual(batches, [[1, 2], [3, 4, 5, 6]], "a full batch does not wait");
    await Promise.all(full);
  });

  it("with a linger, the wait is bounded by the oldest item's age", async () => {
    const batcher = new Batcher<number>(async () => undefined, { maxBatch: 100, maxInFlight: 1, lingerMs: 20 });
    const started = performance.now();
    await batcher.add(1);
    const waited = performance.now() - started;
    assert.ok(waited >= 19, `waited ${waited.toFixed(1)} ms`);
  });

  it("never runs more than maxInFlight batches at once", async () => {
    let running = 0;
    let peak = 0;
    const batcher = new Batcher<number>(
      async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 2));
        running--;
      },
      { maxBatch: 2, maxInFlight: 3 },
    );
    await Promise.all(Array.from({ length: 40 }, (_, i) => batcher.add(i)));
    assert.equal(peak, 3);
  });
});

describe("BatchLoader", () => {
  it("answers concurrent loads from shared fetches, each with its own value", async () => {
    const fetches: string[][] = [];
    const loader = new BatchLoader<string, number>(
      async (keys) => {
        fetches.push(keys);
        await new Promise((r) => setTimeout(r, 1));
        return new Map(keys.filter((k) => k !== "missing").map((k) => [k, k.length]));
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    const keys = ["a", "bb", "ccc", "bb", "missing", "dddd"];
    const values = await Promise.all(keys.map((k) => loader.load(k)));
    assert.deepEqual(values, [1, 2, 3, 2, null, 4]);
    assert.ok(fetches.length <= 2, `fetched ${fetches.length} times`);
    assert.ok(fetches.every((batch) => new Set(batch).size === batch.length), "a key is fetched once per batch");
  });

  it("a failed fetch rejects the loads in it", async () => {
    const loader = new BatchLoader<string, number>(async () => {
      throw new Error("db down");
    });
    await assert.rejects(loader.load("a"), /db down/);
  });
});

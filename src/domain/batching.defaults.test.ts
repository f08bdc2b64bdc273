import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BatchLoader, Batcher } from "./batching.js";

/** A write that holds every batch until the test lets it go. */
function heldWrites<T>() {
  const batches: T[][] = [];
  const waiting: Array<() => void> = [];
  const write = async (items: T[]) => {
    batches.push(items);
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const releaseAll = () => waiting.splice(0).forEach((resolve) => resolve());
  return { batches, write, releaseAll };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("Batcher defaults", () => {
  it("runs up to 4 batches at once, of up to 64 items", async () => {
    const held = heldWrites<number>();
    const batcher = new Batcher<number>(held.write);
    const done = Array.from({ length: 70 }, (_, i) => batcher.add(i));
    assert.deepEqual(held.batches, [[0], [1], [2], [3]], "idle slots write at once, one item each");
    held.releaseAll();
    await tick();
    assert.equal(held.batches.length, 6);
    assert.deepEqual(held.batches[4], Array.from({ length: 64 }, (_, i) => i + 4));
    assert.deepEqual(held.batches[5], [68, 69]);
    held.releaseAll();
    await Promise.all(done);
  });

  it("a slot freed by a failed batch is used again", async () => {
    let calls = 0;
    const batcher = new Batcher<number>(
      async () => {
        calls++;
        if (calls === 1) throw new Error("first fails");
      },
      { maxBatch: 1, maxInFlight: 1 },
    );
    const results = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["rejected", "fulfilled"],
    );
    assert.equal(calls, 2);
  });
});

describe("BatchLoader defaults", () => {
  it("shares the Batcher's defaults: 4 fetches in flight, then up to 64 keys in one", async () => {
    const fetches: string[][] = [];
    const waiting: Array<() => void> = [];
    const loader = new BatchLoader<string, string>(async (keys) => {
      fetches.push(keys);
      await new Promise<void>((resolve) => waiting.push(resolve));
      return new Map(keys.map((k) => [k, k.toUpperCase()]));
    });
    const keys = Array.from({ length: 70 }, (_, i) => `k${i}`);
    const loads = keys.map((k) => loader.load(k));
    assert.equal(fetches.length, 4);
    waiting.splice(0).forEach((resolve) => resolve());
    await tick();
    assert.equal(fetches[4]?.length, 64);
    waiting.splice(0).forEach((resolve) => resolve());
    await tick();
    waiting.splice(0).forEach((resolve) => resolve());
    assert.deepEqual(await Promise.all(loads), keys.map((k) => k.toUpperCase()));
  });
});

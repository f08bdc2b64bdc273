import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Batcher } from "./batcher.js";

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

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { replayQuota } from "./quota-replay.js";
import type { QuotaStore } from "./ports.js";

/** Records the calls replay makes on the port (the store itself has its own contract suite). */
function recordingStore(): { store: QuotaStore; calls: unknown[] } {
  const calls: unknown[] = [];
  const store = {
    async reserve(input: unknown) {
      calls.push(["reserve", input]);
      return { ok: true } as never;
    },
    async settle(input: unknown) {
      calls.push(["settle", input]);
      return "settled" as never;
    },
  } as unknown as QuotaStore;
  return { store, calls };
}

const unlimited = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

describe("quota replay", () => {
  it("reserves and settles each settled request in its own day, and reserves each open one again", async () => {
    const { store, calls } = recordingStore();
    const counts = await replayQuota(store, {
      settled: [
        { userId: "u1", requestId: "r1", tokens: 7, day: "2026-11-03" },
        { userId: "u2", requestId: "r2", tokens: 9, day: "2026-10-31" },
      ],
      open: [{ userId: "u1", requestId: "r3", tokens: 30, day: "2026-11-04" }],
    });
    assert.deepEqual(counts, { settled: 2, open: 1 });
    assert.deepEqual(calls, [
      ["reserve", { userId: "u1", requestId: "r1", tokens: 7, limits: unlimited, now: new Date("2026-11-03T12:00:00.000Z") }],
      ["settle", { userId: "u1", requestId: "r1", actualTokens: 7 }],
      ["reserve", { userId: "u2", requestId: "r2", tokens: 9, limits: unlimited, now: new Date("2026-10-31T12:00:00.000Z") }],
      ["settle", { userId: "u2", requestId: "r2", actualTokens: 9 }],
      ["reserve", { userId: "u1", requestId: "r3", tokens: 30, limits: unlimited, now: new Date("2026-11-04T12:00:00.000Z") }],
    ]);
  });

  it("replays nothing from an empty record", async () => {
    const { store, calls } = recordingStore();
    assert.deepEqual(await replayQuota(store, { settled: [], open: [] }), { settled: 0, open: 0 });
    assert.deepEqual(calls, []);
  });
});

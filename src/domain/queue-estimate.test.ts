import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deadlineRefusal, drainRate, estimateFor, type QueueSnapshot } from "./queue-estimate.js";

const now = new Date("2026-12-02T10:00:00Z");
const snapshot = (over: Partial<QueueSnapshot> = {}): QueueSnapshot => ({
  at: now, openRequests: 100, openEstimatedTokens: 2_000, pendingBatchLines: 0,
  windowSeconds: 10, finishedRequests: 50, finishedEstimatedTokens: 1_000, meanRunSeconds: 0.5, ...over,
});

describe("queue estimate", () => {
  it("the backlog drains at the estimated tokens finished per second; the start is that less the mean run (Little's law)", () => {
    assert.equal(drainRate(snapshot()), 100);
    const e = estimateFor(snapshot(), 20, now); // 2,000 ÷ 100 = 20 s in the system, 0.5 s of it running
    assert.equal(e?.startInSeconds, 19.5);
    assert.equal(e?.startAt.toISOString(), "2026-12-02T10:00:19.500Z");
    assert.equal(estimateFor(snapshot({ openEstimatedTokens: 20 }), 20, now)?.startInSeconds, 0, "never before now");
  });

  it("a request runs the mean run time scaled by its size against the mean size", () => {
    const e = estimateFor(snapshot(), 40, now); // mean size 20: twice the mean run
    assert.equal(e!.finishAt.getTime() - e!.startAt.getTime(), 1_000);
  });

  it("an empty queue starts at once; a backlog with nothing finished lately has no estimate", () => {
    assert.equal(estimateFor(snapshot({ openEstimatedTokens: 0, openRequests: 0 }), 20, now)?.startInSeconds, 0);
    assert.equal(estimateFor(snapshot({ finishedEstimatedTokens: 0, finishedRequests: 0 }), 20, now), null);
    assert.equal(estimateFor(snapshot({ openEstimatedTokens: 0, finishedEstimatedTokens: 0, finishedRequests: 0, meanRunSeconds: null }), 20, now)?.startInSeconds, 0);
  });

  it("a deadline shorter than the wait is refused, with when to try again; no estimate refuses nothing", () => {
    const e = estimateFor(snapshot({ meanRunSeconds: 0 }), 20, now); // 20 s
    assert.equal(deadlineRefusal(e, 30), undefined);
    assert.equal(deadlineRefusal(e, 20), undefined);
    assert.equal(deadlineRefusal(e, 5), 15);
    assert.equal(deadlineRefusal(e, 19.9), 1);
    assert.equal(deadlineRefusal(null, 0), undefined);
  });
});

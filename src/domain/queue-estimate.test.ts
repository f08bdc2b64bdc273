import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deadlineRefusal, drainRate, estimateFor, etaBody, unrecordedSeconds, type QueueSnapshot } from "./queue-estimate.js";

const now = new Date("2026-12-02T10:00:00Z");
const snapshot = (over: Partial<QueueSnapshot> = {}): QueueSnapshot => ({
  at: now, openRequests: 100, openEstimatedTokens: 2_000, pendingBatchLines: 0,
  windowSeconds: 10, finishedRequests: 50, finishedEstimatedTokens: 1_000, meanRunSeconds: 0.5,
  lastFinishedAt: new Date(now.getTime() - 200), ...over, // one interval between finishes: 10 s ÷ 50

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

  it("the finishes not yet recorded (since the latest recorded one, less an interval between finishes) are not ahead", () => {
    const late = snapshot({ lastFinishedAt: new Date(now.getTime() - 1_200) }); // 1 s more than the 0.2 s interval
    assert.equal(unrecordedSeconds(late), 1);
    assert.equal(estimateFor(late, 20, now)?.startInSeconds, 18.5);
    assert.equal(unrecordedSeconds(snapshot({ lastFinishedAt: new Date(now.getTime() - 100) })), 0, "sooner than an interval: nothing missing");
    assert.equal(unrecordedSeconds(snapshot({ lastFinishedAt: null })), 0);
    assert.equal(unrecordedSeconds(snapshot({ finishedRequests: 0, finishedEstimatedTokens: 0 })), 0);
    assert.equal(estimateFor(snapshot({ lastFinishedAt: new Date(now.getTime() - 60_000) }), 20, now)?.startInSeconds, 0, "never before now");
  });

  it("the time to join the queue adds in the proportion of the arrivals to the throughput", () => {
    const base = estimateFor(snapshot(), 20, now)!.startInSeconds; // 19.5
    assert.equal(estimateFor(snapshot(), 20, now, { enqueueSeconds: 0.04, arrivalShare: 1 })!.startInSeconds, base + 0.04);
    assert.equal(estimateFor(snapshot(), 20, now, { enqueueSeconds: 0.04, arrivalShare: 0.5 })!.startInSeconds, base + 0.02);
    assert.equal(estimateFor(snapshot(), 20, now, { enqueueSeconds: 0.04, arrivalShare: 0 })!.startInSeconds, base, "nothing else arriving: the queue drains meanwhile");
    assert.equal(estimateFor(snapshot(), 20, now, { enqueueSeconds: 0.04, arrivalShare: 3 })!.startInSeconds, base + 0.04, "capped at all of it");
  });

  it("no window or nothing finished in it: no rate, nothing unrecorded, and a run of unknown size takes no time", () => {
    assert.equal(drainRate(snapshot({ windowSeconds: 0 })), null);
    assert.equal(drainRate(snapshot({ finishedEstimatedTokens: 0 })), null);
    assert.equal(unrecordedSeconds(snapshot({ windowSeconds: 0, lastFinishedAt: new Date(now.getTime() - 1_000) })), 0);
    const e = estimateFor(snapshot({ openEstimatedTokens: 0, openRequests: 0, finishedRequests: 0, finishedEstimatedTokens: 0 }), 20, now)!;
    assert.equal(e.finishAt.getTime(), e.startAt.getTime());
  });

  it("answers carry the estimate as ISO times, or nulls without one", () => {
    const e = estimateFor(snapshot(), 40, now); // starts in 19.5 s, runs 1 s
    assert.deepEqual(etaBody(e), { estimated_start_at: "2026-12-02T10:00:19.500Z", estimated_finish_at: "2026-12-02T10:00:20.500Z" });
    assert.deepEqual(etaBody(null), { estimated_start_at: null, estimated_finish_at: null });
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

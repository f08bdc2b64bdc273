import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nextReadDelay, QueueEstimator } from "./queue-estimator.js";
import type { QueueSnapshot } from "../../domain/queue-estimate.js";
import { silentLogger } from "../../observability/logger.js";

describe("how often the queue estimator reads the backlog", () => {
  it("every interval while the backlog is short", () => {
    assert.equal(nextReadDelay(100, 0), 100);
    assert.equal(nextReadDelay(100, 96), 100);
    assert.equal(nextReadDelay(100, 5_000), 100);
  });

  it("a deep backlog, whose count costs more, is read less often", () => {
    assert.equal(nextReadDelay(100, 25_000), 500);
    assert.equal(nextReadDelay(100, 1_000_000), 20_000);
    assert.equal(nextReadDelay(30_000, 1_000_000), 30_000, "a long interval still wins");
  });
});

describe("the estimator's part of an admission's own time to join the queue", () => {
  // Throughput 100 estimated tokens/s, nothing open: the start is only the time to join.
  const idle = (at: Date): QueueSnapshot => ({
    at, openRequests: 0, openEstimatedTokens: 0, pendingBatchLines: 0, windowSeconds: 10,
    finishedRequests: 50, finishedEstimatedTokens: 1_000, meanRunSeconds: 0.5, lastFinishedAt: at,
  });
  const setup = () => {
    let clock = new Date("2026-12-03T10:00:00Z");
    const estimator = new QueueEstimator({
      stats: { snapshot: async (_w: number, now: Date) => idle(now), positionOf: async () => ({ open: 0, ahead: 0, aheadEstimatedTokens: 0 }) },
      log: silentLogger, intervalMs: 100, windowSeconds: 10, recentRequests: 1_024, now: () => clock,
    });
    return { estimator, advance: (ms: number) => (clock = new Date(clock.getTime() + ms)) };
  };

  it("a steady stream of arrivals as fast as the throughput adds the mean time to publish", async () => {
    const { estimator, advance } = setup();
    await estimator.refresh();
    for (let i = 0; i < 200; i++) estimator.admitted(1, 0.04); // 200 tokens in 2 s: the throughput
    advance(2_000);
    await estimator.refresh();
    const wait = estimator.estimate(20)!.startInSeconds;
    assert.ok(Math.abs(wait - 0.04) < 0.001, `${wait}`);
  });

  it("no other arrivals: the queue drains while a request joins, nothing is added", async () => {
    const { estimator, advance } = setup();
    await estimator.refresh();
    estimator.admitted(1, 0.04);
    advance(2_000);
    await estimator.refresh();
    assert.ok(estimator.estimate(20)!.startInSeconds < 0.001);
  });
});

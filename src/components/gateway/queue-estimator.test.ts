import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nextReadDelay } from "./queue-estimator.js";

describe("how often the queue estimator reads the backlog", () => {
  it("every interval while reads are quick", () => {
    assert.equal(nextReadDelay(100, 0), 100);
    assert.equal(nextReadDelay(100, 0.5), 100);
  });

  it("never reading more than a fiftieth of the time: a slow read (a deep backlog) spaces the next", () => {
    assert.equal(nextReadDelay(100, 2), 100);
    assert.equal(nextReadDelay(100, 10), 490); // 10 ms of every 500
    assert.equal(nextReadDelay(100, 50), 2_450);
    assert.equal(nextReadDelay(10_000, 50), 10_000, "a long interval still wins");
  });
});

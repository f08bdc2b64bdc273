import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nextReadDelay } from "./queue-estimator.js";

describe("how often the queue estimator reads the backlog", () => {
  it("every interval while reads are quick", () => {
    assert.equal(nextReadDelay(100, 0), 100);
    assert.equal(nextReadDelay(100, 2), 100);
  });

  it("never reading more than a twentieth of the time: a slow read (a deep backlog) spaces the next", () => {
    assert.equal(nextReadDelay(100, 10), 190); // 10 ms of every 200
    assert.equal(nextReadDelay(100, 50), 950);
    assert.equal(nextReadDelay(5_000, 50), 5_000, "a long interval still wins");
  });
});

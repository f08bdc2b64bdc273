import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nextReadDelay } from "./queue-estimator.js";

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

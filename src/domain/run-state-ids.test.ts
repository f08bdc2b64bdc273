/**
 * Which request ids the run-state adapters take (they become Redis keys and hash tags) and which
 * times to live: the edges of each, so that a loosened check fails here, not in Redis.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_RUN_STATE_TTL_MS, assertRunStateRequestId, assertTtlMs, isPlausibleRequestId } from "./run-state-ids.js";

describe("run-state request ids", () => {
  it("takes a UUID, one character, and 256 printable characters", () => {
    for (const id of ["00000000-0000-4000-8000-000000000001", "a", "x".repeat(256), "batch:b_1:7", "ünï-✓"]) {
      assert.equal(isPlausibleRequestId(id), true, id);
      assert.doesNotThrow(() => assertRunStateRequestId(id));
    }
  });

  for (const [what, id] of [
    ["the empty string", ""],
    ["257 characters", "x".repeat(257)],
    ["a space", "a b"],
    ["a tab", "a\tb"],
    ["a newline", "a\nb"],
    ["an opening brace (a Redis hash tag)", "a{b"],
    ["a closing brace", "a}b"],
    ["a control character", "a\u0001b"],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.equal(isPlausibleRequestId(id), false);
      assert.throws(() => assertRunStateRequestId(id), { name: "RangeError", message: /1\.\.256 characters without whitespace/ });
    });
  }

  it("refuses what is not a string", () => {
    for (const value of [undefined, null, 42, { id: "a" }, ["a"]]) assert.equal(isPlausibleRequestId(value), false);
  });
});

describe("run-state times to live", () => {
  it("takes a positive whole number of milliseconds", () => {
    for (const ttl of [1, 1000, DEFAULT_RUN_STATE_TTL_MS, Number.MAX_SAFE_INTEGER]) assert.doesNotThrow(() => assertTtlMs(ttl));
  });

  it("refuses zero, negatives, fractions, NaN, infinity and unsafe integers", () => {
    for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1]) {
      assert.throws(() => assertTtlMs(ttl), { name: "RangeError", message: /positive whole number/ }, String(ttl));
    }
  });

  it("keeps a run state a day by default", () => {
    assert.equal(DEFAULT_RUN_STATE_TTL_MS, 86_400_000);
  });
});

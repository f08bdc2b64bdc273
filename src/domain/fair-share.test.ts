import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { estimatedLineTokens, tierWeightOf, MAX_TIER_WEIGHT } from "./fair-share.js";

describe("a batch line's estimated tokens", () => {
  const params = { maxLength: 10, numReturnSequences: 1 };

  it("counts the prompt at four characters a token plus every token it may generate", () => {
    assert.equal(estimatedLineTokens({ prompt: "x".repeat(40), params }), 20);
    assert.equal(estimatedLineTokens({ prompt: "abc", params }), 11, "a started token counts");
  });

  it("adds the chat template's markers per message, and multiplies by the sequences", () => {
    assert.equal(estimatedLineTokens({ prompt: "x".repeat(8), params, messages: [{}, {}] }), 2 + 8 + 10);
    assert.equal(estimatedLineTokens({ prompt: "x".repeat(8), params: { maxLength: 10, numReturnSequences: 3 } }), 36);
  });

  it("is never 0 (every line costs something, so a tenant cannot run unboundedly for free)", () => {
    assert.equal(estimatedLineTokens({ prompt: "", params: { maxLength: 0, numReturnSequences: 1 } }), 1);
  });

  it("a longer prompt costs more: what tenants share is tokens, not lines", () => {
    assert.ok(estimatedLineTokens({ prompt: "x".repeat(400), params }) > 5 * estimatedLineTokens({ prompt: "x".repeat(8), params }));
  });
});

describe("a tier weight from the admin CLI", () => {
  it("takes positive numbers up to the ceiling", () => {
    assert.equal(tierWeightOf("1"), 1);
    assert.equal(tierWeightOf("2.5"), 2.5);
    assert.equal(tierWeightOf(String(MAX_TIER_WEIGHT)), MAX_TIER_WEIGHT);
  });

  it("refuses 0, negatives, too large, and what is not a plain number", () => {
    for (const raw of ["0", "-1", "0.001", String(MAX_TIER_WEIGHT + 1), "abc", "1e3", "Infinity", "", "NaN"]) assert.equal(tierWeightOf(raw), null, raw);
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseOutcomeMessage, storableText } from "./contracts.js";

describe("contracts", () => {
  it("storableText drops NUL and replaces lone surrogates, keeping real pairs", () => {
    assert.equal(storableText("a\u0000b"), "ab");
    assert.equal(storableText("x\ud800y"), "x\uFFFDy");
    assert.equal(storableText("smile 😀"), "smile 😀");
  });

  it("an outcome's time must be a date", () => {
    const base = { v: 1, request_id: "2b1f0d8e-7a7c-4a57-9d55-3f1c2b7e9a10", user_id: "u", status: "failed", attempt: 1 };
    assert.equal(parseOutcomeMessage(JSON.stringify({ ...base, at: new Date().toISOString() })).ok, true);
    const bad = parseOutcomeMessage(JSON.stringify({ ...base, at: "yesterday-ish" }));
    assert.equal(bad.ok, false);
  });

  it("only final outcomes travel: processing is transient state, not a message", () => {
    const base = { v: 1, request_id: "2b1f0d8e-7a7c-4a57-9d55-3f1c2b7e9a10", user_id: "u", attempt: 1, at: new Date().toISOString() };
    assert.equal(parseOutcomeMessage(JSON.stringify({ ...base, status: "processing" })).ok, false);
    const started = parseOutcomeMessage(JSON.stringify({ ...base, status: "failed", started_at: base.at }));
    assert.equal(started.ok && started.value.started_at, base.at, "the start time travels in the final outcome");
    assert.equal(parseOutcomeMessage(JSON.stringify({ ...base, status: "failed", started_at: "soon" })).ok, false);
  });
});

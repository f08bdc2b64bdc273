/** Results messages: a bundle of outcomes, or one outcome as before bundles; entries read one by one. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeMessage, encodeOutcomes, MAX_OUTCOMES_PER_MESSAGE, parseOutcomes, type OutcomeMessage } from "./contracts.js";

const outcome = (n: number): OutcomeMessage => ({
  v: 1,
  request_id: `2b1f0d8e-7a7c-4a57-9d55-3f1c2b7e9a${String(n).padStart(2, "0")}`,
  user_id: "u",
  status: "completed",
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  attempt: 1,
  at: "2031-01-02T03:04:05.000Z",
});

describe("contracts: results messages", () => {
  it("a bundle round-trips in order, with each outcome's traceparent", () => {
    const traced = { ...outcome(2), traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
    assert.deepEqual(parseOutcomes(encodeOutcomes([outcome(1), traced])), { ok: true, value: { outcomes: [outcome(1), traced], problems: [] } });
  });

  it("one outcome alone is read as before bundles", () => {
    assert.deepEqual(parseOutcomes(encodeMessage(outcome(3))), { ok: true, value: { outcomes: [outcome(3)], problems: [] } });
  });

  it("an unreadable entry is named by its index and does not hide the others", () => {
    const body = JSON.stringify({ v: 1, outcomes: [outcome(1), { ...outcome(2), status: "processing" }, outcome(3)] });
    const parsed = parseOutcomes(body);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.value.outcomes, [outcome(1), outcome(3)]);
    assert.equal(parsed.value.problems.length, 1);
    assert.match(parsed.value.problems[0]!, /^outcomes\.1: status: /);
  });

  it("a message with no readable outcome is refused, with what is wrong", () => {
    assert.deepEqual(parseOutcomes("{not json"), { ok: false, error: "message is not JSON" });
    const none = parseOutcomes(JSON.stringify({ v: 1, outcomes: [] }));
    assert.equal(none.ok, false);
    assert.match(none.ok ? "" : none.error, /^outcomes: /);
    const tooMany = parseOutcomes(encodeOutcomes(Array.from({ length: MAX_OUTCOMES_PER_MESSAGE + 1 }, () => outcome(1))));
    assert.equal(tooMany.ok, false);
    assert.equal(parseOutcomes(JSON.stringify({ v: 2, outcomes: [outcome(1)] })).ok, false);
    assert.equal(parseOutcomes(JSON.stringify({ v: 1, outcomes: [outcome(1)], extra: true })).ok, false);
    const single = parseOutcomes(JSON.stringify({ ...outcome(1), status: "processing" }));
    assert.equal(single.ok, false);
    assert.match(single.ok ? "" : single.error, /^status: /);
    assert.equal(parseOutcomes(JSON.stringify({ v: 1, outcomes: [{ ...outcome(1), traceparent: "x".repeat(257) }] })).ok, false);
  });
});

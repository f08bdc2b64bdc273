/** The outcome and event contracts, field by field (the request message belongs to the request shape). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { QUEUE_NAMES, encodeMessage, parseOutcomeMessage, requestEventSchema, storableText, type OutcomeMessage } from "./contracts.js";

const base = {
  v: 1,
  request_id: "2b1f0d8e-7a7c-4a57-9d55-3f1c2b7e9a10",
  user_id: "u",
  status: "completed",
  output_text: "hi",
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  attempt: 1,
  at: "2031-01-02T03:04:05.000Z",
};
const parse = (message: Record<string, unknown>) => parseOutcomeMessage(JSON.stringify(message));

describe("contracts: outcome messages", () => {
  it("names the queues", () => {
    assert.deepEqual(QUEUE_NAMES, { requests: "inference_requests", results: "inference_results" });
  });

  it("accepts a full outcome, from a Buffer or a string, and round-trips through encodeMessage", () => {
    const full = {
      ...base,
      model: "m",
      outputs: ["a", "b"],
      error: undefined,
      timings: { queued_ms: 0, processing_ms: 12.5 },
    };
    const parsed = parseOutcomeMessage(encodeMessage(full as OutcomeMessage));
    assert.deepEqual(parsed, { ok: true, value: JSON.parse(JSON.stringify(full)) });
    assert.equal(parseOutcomeMessage(Buffer.from(JSON.stringify(base))).ok, true);
    assert.equal(parse({ ...base, status: "failed", error: { code: "x", message: "y" } }).ok, true);
    // `processing` is transient state, never an outcome message.
    assert.equal(parse({ ...base, status: "processing" }).ok, false);
    assert.equal(parse({ ...base, started_at: "2031-01-02T03:04:04.000Z" }).ok, true);
    assert.equal(parse({ ...base, user_id: "u".repeat(128) }).ok, true);
    assert.equal(parse({ ...base, usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } }).ok, true);
    assert.equal(parse({ ...base, timings: {} }).ok, true);
  });

  it("rejects each malformed field, naming it", () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ["v", { ...base, v: 2 }],
      ["request_id", { ...base, request_id: "not-a-uuid" }],
      ["user_id", { ...base, user_id: "" }],
      ["user_id", { ...base, user_id: "u".repeat(129) }],
      ["status", { ...base, status: "queued" }],
      ["usage.total_tokens", { ...base, usage: { ...base.usage, total_tokens: -1 } }],
      ["usage.prompt_tokens", { ...base, usage: { ...base.usage, prompt_tokens: 1.5 } }],
      ["usage.completion_tokens", { ...base, usage: { ...base.usage, completion_tokens: -2 } }],
      ["usage", { ...base, usage: { ...base.usage, extra: 1 } }],
      ["error", { ...base, error: { code: "x", message: "y", extra: 1 } }],
      ["error.message", { ...base, error: { code: "x" } }],
      ["attempt", { ...base, attempt: 0 }],
      ["attempt", { ...base, attempt: 1.5 }],
      ["timings.queued_ms", { ...base, timings: { queued_ms: -1 } }],
      ["timings.processing_ms", { ...base, timings: { processing_ms: -1 } }],
      ["timings", { ...base, timings: { other: 1 } }],
      ["at", { ...base, at: "yesterday-ish" }],
      ["outputs.0", { ...base, outputs: [1] }],
      ["model", { ...base, model: 3 }],
      ["output_text", { ...base, output_text: 3 }],
      ["(root)", { ...base, extra: true }],
    ];
    for (const [field, message] of cases) {
      const parsed = parse(message);
      assert.equal(parsed.ok, false, field);
      if (!parsed.ok) assert.ok(parsed.error.startsWith(`${field}: `), `${field}: ${parsed.error}`);
    }
    const at = parse({ ...base, at: "nope" });
    assert.deepEqual(at, { ok: false, error: "at: must be a date-time" });
    const two = parse({ ...base, attempt: 0, at: "nope" });
    assert.ok(!two.ok && two.error.includes("; "), "every problem is listed");
  });

  it("says when a message is not JSON", () => {
    assert.deepEqual(parseOutcomeMessage("{not json"), { ok: false, error: "message is not JSON" });
    assert.deepEqual(parseOutcomeMessage(Buffer.from("")), { ok: false, error: "message is not JSON" });
  });

  it("storableText drops every NUL and replaces every lone surrogate", () => {
    assert.equal(storableText("\u0000a\u0000b\u0000"), "ab");
    assert.equal(storableText("\ud800x\udc00"), "\uFFFDx\uFFFD");
  });
});

describe("contracts: request events", () => {
  it("carries id, user, one of the four statuses and whether it is final; extra fields pass through", () => {
    const event = { request_id: "r", user_id: "u", status: "queued", final: false, extra: 1 };
    assert.deepEqual(requestEventSchema.parse(event), event);
    for (const status of ["processing", "completed", "failed"]) assert.equal(requestEventSchema.safeParse({ ...event, status }).success, true);
    assert.equal(requestEventSchema.safeParse({ ...event, status: "done" }).success, false);
    assert.equal(requestEventSchema.safeParse({ ...event, final: "no" }).success, false);
    assert.equal(requestEventSchema.safeParse({ ...event, request_id: 1 }).success, false);
    assert.equal(requestEventSchema.safeParse({ ...event, user_id: undefined }).success, false);
  });
});

/**
 * What the collector charges and tells for each kind of final outcome (real PostgreSQL): a cancel
 * pays for what was processed and nothing when nothing was; a failure on the request's own input
 * counts as a request; a redelivery decides from the stored outcome, not the late one; a streamed
 * request's stream ends with the stored outcome, numbered after the worker's last delta.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { collectorHarness, NOW, type CollectorHarness } from "../support/collector-harness.js";
import { requireServices } from "../support/services.js";

const skip = await requireServices("postgres");
const ZERO = { requests: 0, tokensUsed: 0, tokensReserved: 0 };

describe("collector: what each final outcome charges and tells", { skip }, () => {
  let h: CollectorHarness;
  before(async () => {
    h = await collectorHarness();
  });
  after(async () => {
    await h?.close();
  });
  const daily = async (userId: string) => (await h.quota.usage(userId, NOW)).daily;

  it("a cancel after the model started keeps its text and usage and pays for the tokens processed", async () => {
    const { requestId, userId } = await h.admitted();
    const usage = { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 };
    const event = await h.deliver({ request_id: requestId, user_id: userId, status: "cancelled", output_text: "Once", usage });
    assert.equal(event.status, "cancelled");
    const stored = await h.requests.get(requestId);
    assert.equal(stored?.status, "cancelled");
    assert.equal(stored?.outputText, "Once");
    assert.deepEqual(stored?.usage, usage);
    assert.equal(stored?.finishReason, "cancelled", "a cancel that names no finish reason is 'cancelled'");
    assert.equal(stored?.error, null);
    assert.deepEqual(await daily(userId), { requests: 1, tokensUsed: 6, tokensReserved: 0 });
    assert.match(await h.metric("results_collected_total"), /status="cancelled"\} 1$/m);
  });

  it("a cancel before the model reported anything stores no usage and gives the reservation back", async () => {
    const { requestId, userId } = await h.admitted();
    await h.deliver({ request_id: requestId, user_id: userId, status: "cancelled", usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } });
    const stored = await h.requests.get(requestId);
    assert.equal(stored?.status, "cancelled");
    assert.equal(stored?.usage, null);
    assert.equal(stored?.outputText, "");
    assert.deepEqual(await daily(userId), ZERO);
  });

  it("a completed outcome keeps the finish reason it names, and none when it names none", async () => {
    const named = await h.admitted();
    await h.deliver({ request_id: named.requestId, user_id: named.userId, status: "completed", output_text: "a", finish_reason: "length", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    assert.equal((await h.requests.get(named.requestId))?.finishReason, "length");
    const unnamed = await h.admitted();
    await h.deliver({ request_id: unnamed.requestId, user_id: unnamed.userId, status: "completed", output_text: "a", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    assert.equal((await h.requests.get(unnamed.requestId))?.finishReason, null);
    const failed = await h.admitted();
    await h.deliver({ request_id: failed.requestId, user_id: failed.userId, status: "failed", finish_reason: "stop", error: { code: "ml_timeout", message: "slow" } });
    assert.equal((await h.requests.get(failed.requestId))?.finishReason, null, "a failure has no finish reason");
  });

  it("a failure on the request's own input counts as a request with no tokens; another failure counts nothing", async () => {
    const own = await h.admitted();
    await h.deliver({ request_id: own.requestId, user_id: own.userId, status: "failed", error: { code: "prompt_too_long", message: "longer than the context" } });
    assert.deepEqual(await daily(own.userId), { requests: 1, tokensUsed: 0, tokensReserved: 0 });
    const theirs = await h.admitted();
    await h.deliver({ request_id: theirs.requestId, user_id: theirs.userId, status: "failed", error: { code: "ml_unreachable", message: "down" } });
    assert.deepEqual(await daily(theirs.userId), ZERO);
    const cancelled = await h.admitted();
    await h.deliver({ request_id: cancelled.requestId, user_id: cancelled.userId, status: "cancelled", error: { code: "prompt_too_long", message: "stray" } });
    assert.deepEqual(await daily(cancelled.userId), ZERO, "only a failed outcome is charged for its code");
  });

  it("a redelivery settles as the stored outcome says: a charged failure counts, a cancel that ran pays its tokens", async () => {
    const failed = await h.admitted();
    const error = { code: "invalid_parameter", message: "top_k" };
    // As if a collector stored the outcome and crashed before settling.
    await h.requests.finish({ requestId: failed.requestId, status: "failed", at: NOW, outputText: null, outputs: null, usage: null, error, attempt: 1 });
    await h.deliver({ request_id: failed.requestId, user_id: failed.userId, status: "failed", error: { code: "ml_timeout", message: "late, different" } });
    assert.deepEqual(await daily(failed.userId), { requests: 1, tokensUsed: 0, tokensReserved: 0 });

    const cancelled = await h.admitted();
    const usage = { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 };
    await h.requests.finish({ requestId: cancelled.requestId, status: "cancelled", at: NOW, outputText: "", outputs: null, usage, error: null, attempt: 1 });
    const event = await h.deliver({ request_id: cancelled.requestId, user_id: cancelled.userId, status: "completed", output_text: "x", usage: { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18 } });
    assert.equal(event.status, "cancelled");
    assert.deepEqual(await daily(cancelled.userId), { requests: 1, tokensUsed: 3, tokensReserved: 0 });
  });

  it("a streamed request's stream ends with its outcome, numbered after the last delta", async () => {
    const { requestId, userId } = await h.admitted();
    const usage = { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 };
    await h.deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "abc", usage, finish_reason: "stop", stream_seq: 3 });
    assert.deepEqual(await h.streams.read(requestId, 0, 10), [
      { seq: 4, type: "final", status: "completed", usage, finishReason: "stop", error: null },
    ]);
    const failed = await h.admitted();
    await h.deliver({ request_id: failed.requestId, user_id: failed.userId, status: "failed", error: { code: "ml_timeout", message: "slow" }, stream_seq: 0 });
    assert.deepEqual(await h.streams.read(failed.requestId, 0, 10), [
      { seq: 1, type: "final", status: "failed", usage: null, finishReason: null, error: { code: "ml_timeout", message: "slow" } },
    ]);
    const cancelled = await h.admitted();
    await h.deliver({ request_id: cancelled.requestId, user_id: cancelled.userId, status: "cancelled", usage, stream_seq: 1 });
    const [end] = await h.streams.read(cancelled.requestId, 0, 10);
    assert.equal(end?.type === "final" ? end.status : end?.type, "cancelled");
  });

  it("a streamed duplicate ends the stream again with the stored outcome, not its own", async () => {
    const { requestId, userId } = await h.admitted();
    const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
    await h.deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "a", usage, finish_reason: "length", stream_seq: 2 });
    await h.deliver({ request_id: requestId, user_id: userId, status: "failed", error: { code: "worker_error", message: "late" }, stream_seq: 5 });
    const events = await h.streams.read(requestId, 0, 10);
    assert.deepEqual(events.map((e) => (e.type === "final" ? [e.seq, e.type, e.status, e.finishReason] : [e.seq, e.type])), [
      [3, "final", "completed", "length"],
      [6, "final", "completed", "length"],
    ]);
  });

  it("a plain outcome appends nothing to any stream", async () => {
    const { requestId, userId } = await h.admitted();
    await h.deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "a", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
    assert.deepEqual(await h.streams.read(requestId, 0, 10), []);
  });
});

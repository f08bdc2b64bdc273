/**
 * The collector through its public behaviour: an outcome published to the results queue is stored
 * (real PostgreSQL), its reservation settled or released, and waiting clients told, exactly once.
 * The event bus's final event is the signal that the collector is done with an outcome. Then its
 * edges: what a final outcome may carry that does not belong to its status, settling exactly once,
 * unknown requests.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { RequestEvent } from "../../src/domain/contracts.js";
import { collectorHarness, NOW, type CollectorHarness } from "../support/collector-harness.js";
import { requireServices } from "../support/services.js";

const skip = await requireServices("postgres");

describe("collector: outcomes from the results queue", { skip }, () => {
  let h: CollectorHarness;
  let requests: CollectorHarness["requests"];
  let quota: CollectorHarness["quota"];
  let events: CollectorHarness["events"];
  let queue: CollectorHarness["queue"];
  let collector: CollectorHarness["collector"];
  const admitted = () => h.admitted();
  const deliver = (outcome: Record<string, unknown>) => h.deliver(outcome);
  const metric = (name: string) => h.metric(name);

  before(async () => {
    h = await collectorHarness();
    ({ requests, quota, events, queue, collector } = h);
  });
  after(async () => {
    await h?.close();
  });

  it("stores a completed outcome with its usage and settles the reservation at the real token count", async () => {
    const { requestId, userId } = await admitted();
    const usage = { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 };
    const event = await deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "Once", usage });
    assert.deepEqual(event, { request_id: requestId, user_id: userId, status: "completed", final: true });
    const stored = await requests.get(requestId);
    assert.equal(stored?.status, "completed");
    assert.equal(stored?.outputText, "Once");
    assert.equal(stored?.outputs, null);
    assert.deepEqual(stored?.usage, usage);
    assert.equal(stored?.error, null);
    assert.equal(stored?.completedAt?.toISOString(), NOW.toISOString());
    const used = await quota.usage(userId, NOW);
    assert.deepEqual(used.daily, { requests: 1, tokensUsed: 7, tokensReserved: 0 });
    assert.deepEqual(used.monthly, { requests: 1, tokensUsed: 7, tokensReserved: 0 });
    assert.match(await metric("results_collected_total"), /status="completed"\} 1$/m);
    assert.match(await metric("tokens_settled_total"), / 7$/m);
  });

  it("stores every returned sequence of a completed outcome", async () => {
    const { requestId, userId } = await admitted();
    const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 };
    await deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "a", outputs: ["a", "b"], usage });
    const stored = await requests.get(requestId);
    assert.equal(stored?.outputText, "a");
    assert.deepEqual(stored?.outputs, ["a", "b"]);
  });

  it("stores a failed outcome with its error and gives the reservation and the request count back", async () => {
    const { requestId, userId } = await admitted();
    const error = { code: "ml_http_400", message: "prompt too long" };
    const event = await deliver({ request_id: requestId, user_id: userId, status: "failed", error });
    assert.equal(event.status, "failed");
    const stored = await requests.get(requestId);
    assert.equal(stored?.status, "failed");
    assert.deepEqual(stored?.error, error);
    assert.equal(stored?.outputText, null);
    assert.equal(stored?.usage, null);
    assert.deepEqual((await quota.usage(userId, NOW)).daily, { requests: 0, tokensUsed: 0, tokensReserved: 0 });
    assert.match(await metric("results_collected_total"), /status="failed"\} 1$/m);
  });

  it("stores a completed outcome without usage as failed (missing_usage), releasing the reservation", async () => {
    const { requestId, userId } = await admitted();
    const event = await deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "x" });
    assert.equal(event.status, "failed");
    const stored = await requests.get(requestId);
    assert.equal(stored?.status, "failed");
    assert.equal(stored?.error?.code, "missing_usage");
    assert.equal(stored?.outputText, null);
    assert.deepEqual((await quota.usage(userId, NOW)).daily, { requests: 0, tokensUsed: 0, tokensReserved: 0 });
  });

  it("a failed outcome without an error still stores a code", async () => {
    const { requestId, userId } = await admitted();
    await deliver({ request_id: requestId, user_id: userId, status: "failed" });
    const stored = await requests.get(requestId);
    assert.equal(stored?.status, "failed");
    assert.equal(typeof stored?.error?.code, "string");
    assert.notEqual(stored?.error?.code, "");
  });

  it("a duplicate outcome changes nothing, is counted, and waiting clients are told again", async () => {
    const { requestId, userId } = await admitted();
    const usage = { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 };
    await deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "first", usage });
    const before = await quota.usage(userId, NOW);
    const duplicatesBefore = await metric("results_duplicates_total");
    const again = await deliver({
      request_id: requestId,
      user_id: userId,
      status: "failed",
      error: { code: "worker_error", message: "late" },
    });
    assert.equal(again.status, "completed", "the stored status is told, not the duplicate's");
    const stored = await requests.get(requestId);
    assert.equal(stored?.status, "completed");
    assert.equal(stored?.outputText, "first");
    assert.deepEqual(await quota.usage(userId, NOW), before);
    assert.notEqual(await metric("results_duplicates_total"), duplicatesBefore);
  });

  it("settles a reservation left open by a crash between the commit and the settle when the outcome comes again", async () => {
    const { requestId, userId } = await admitted();
    const usage = { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 };
    // As if a collector stored the outcome and crashed before settling.
    await requests.finish({ requestId, status: "completed", at: NOW, outputText: "x", outputs: null, usage, error: null, attempt: 1 });
    assert.equal((await quota.usage(userId, NOW)).daily.tokensReserved, 30);
    await deliver({ request_id: requestId, user_id: userId, status: "completed", output_text: "x", usage });
    assert.deepEqual((await quota.usage(userId, NOW)).daily, { requests: 1, tokensUsed: 10, tokensReserved: 0 });
  });

  it("releases, on redelivery, a failed request whose release was lost", async () => {
    const { requestId, userId } = await admitted();
    const error = { code: "ml_timeout", message: "slow" };
    await requests.finish({ requestId, status: "failed", at: NOW, outputText: null, outputs: null, usage: null, error, attempt: 1 });
    await deliver({ request_id: requestId, user_id: userId, status: "failed", error });
    assert.deepEqual((await quota.usage(userId, NOW)).daily, { requests: 0, tokensUsed: 0, tokensReserved: 0 });
  });

  it("dead-letters an unreadable outcome and acks an outcome for an unknown request", async () => {
    const dead: Buffer[] = [];
    const consumer = await queue.consume("results.dead", async (body) => {
      dead.push(body);
      return "ack";
    }, { prefetch: 1 });
    assert.equal(await collector.handle(Buffer.from("{not json")), "dead_letter");
    await queue.publish("results", Buffer.from(JSON.stringify({ v: 2, hello: 1 })));
    const unknown = randomUUID();
    assert.equal(
      await collector.handle(
        Buffer.from(
          JSON.stringify({ v: 1, request_id: unknown, user_id: "nobody", status: "failed", error: { code: "x", message: "y" }, attempt: 1, at: NOW.toISOString() }),
        ),
      ),
      "ack",
    );
    assert.equal(await requests.get(unknown), null);
    const deadline = Date.now() + 5_000;
    while (dead.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await consumer.drain();
    assert.deepEqual(JSON.parse(dead[0]!.toString()), { v: 2, hello: 1 });
    assert.match(await metric("messages_dead_lettered_total"), /queue="results"\} [1-9]/);
  });

  it("a bundle: every readable outcome finished, the unreadable entry dead-lettered with its message", async () => {
    const first = await admitted();
    const second = await admitted();
    const usage = { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 };
    const dead: Buffer[] = [];
    const consumer = await queue.consume("results.dead", async (body) => {
      dead.push(body);
      return "ack";
    }, { prefetch: 1 });
    const at = NOW.toISOString();
    const bundle = {
      v: 1,
      outcomes: [
        { v: 1, request_id: first.requestId, user_id: first.userId, status: "completed", output_text: "a", usage, attempt: 1, at },
        { v: 1, request_id: randomUUID(), user_id: "u", status: "processing", attempt: 1, at },
        { v: 1, request_id: second.requestId, user_id: second.userId, status: "failed", error: { code: "ml_timeout", message: "slow" }, attempt: 1, at },
      ],
    };
    await queue.publish("results", Buffer.from(JSON.stringify(bundle)));
    const deadline = Date.now() + 5_000;
    while (dead.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await consumer.drain();
    assert.deepEqual(JSON.parse(dead[0]!.toString()), bundle, "the message, whole, kept for inspection");
    assert.equal((await requests.get(first.requestId))?.status, "completed");
    assert.deepEqual((await quota.usage(first.userId, NOW)).daily, { requests: 1, tokensUsed: 5, tokensReserved: 0 });
    assert.equal((await requests.get(second.requestId))?.status, "failed");
    assert.deepEqual((await quota.usage(second.userId, NOW)).daily, { requests: 0, tokensUsed: 0, tokensReserved: 0 });
  });

  it("reports healthy while its stores and queue answer", async () => {
    assert.deepEqual(await collector.health(), { component: "collector" });
  });

  // ---- edges: what a final outcome may carry that does not belong to its status, unknown requests

  it("a completed outcome without text stores empty text; a failed one keeps no text, outputs or usage", async () => {
    const empty = await admitted();
    await deliver({ request_id: empty.requestId, user_id: empty.userId, status: "completed", usage: { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 } });
    assert.equal((await requests.get(empty.requestId))?.outputText, "");
    const failed = await admitted();
    const event = await deliver({
      request_id: failed.requestId,
      user_id: failed.userId,
      status: "failed",
      output_text: "partial",
      outputs: ["partial"],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      error: { code: "ml_timeout", message: "slow" },
    });
    assert.equal(event.status, "failed");
    const stored = await requests.get(failed.requestId);
    assert.equal(stored?.status, "failed");
    assert.equal(stored?.outputText, null);
    assert.equal(stored?.outputs, null);
    assert.equal(stored?.usage, null);
    assert.deepEqual((await quota.usage(failed.userId, NOW)).daily, { requests: 0, tokensUsed: 0, tokensReserved: 0 });
  });

  it("a completed outcome delivered twice settles its tokens once", async () => {
    const { requestId, userId } = await admitted();
    const outcome = { request_id: requestId, user_id: userId, status: "completed", output_text: "x", usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } };
    await deliver(outcome);
    const settled = await metric("tokens_settled_total");
    const event = await deliver(outcome);
    assert.equal(event.status, "completed");
    assert.equal(await metric("tokens_settled_total"), settled);
    assert.deepEqual((await quota.usage(userId, NOW)).daily, { requests: 1, tokensUsed: 5, tokensReserved: 0 });
  });

  it("an outcome for an unknown request is neither a duplicate nor told to anyone", async () => {
    const unknown = randomUUID();
    const told: RequestEvent[] = [];
    const unsubscribe = await events.subscribe(unknown, (event) => told.push(event));
    const duplicates = await metric("results_duplicates_total");
    const outcome = { v: 1, request_id: unknown, user_id: "nobody", status: "completed", output_text: "x", usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, attempt: 1, at: NOW.toISOString() };
    assert.equal(await collector.handle(Buffer.from(JSON.stringify(outcome))), "ack");
    await unsubscribe();
    assert.deepEqual(told, []);
    assert.equal(await metric("results_duplicates_total"), duplicates);
    assert.equal(await requests.get(unknown), null);
  });
});

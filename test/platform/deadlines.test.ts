/**
 * Deadlines and the queue estimate (max_queue_seconds): a request still queued past its deadline
 * never runs, fails deadline_exceeded and gets its reservation back; once a throughput has been
 * measured, accepted requests carry an estimate, GET /api/v1/queue shows the backlog and the
 * caller's place, and a deadline the backlog cannot meet is refused at admission with nothing
 * reserved. Real model, embedded and on the real servers.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { quotaOf, startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";
import { waitFor } from "../support/wait.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));


for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`deadlines and the queue estimate on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    let authorization: string;
    before(async () => {
      platform = await startPlatform({ backend, consumers: false, env: { QUEUE_ESTIMATE_INTERVAL_MS: "100" } });
      ({ authorization } = await platform.createUser());
    });
    after(async () => platform?.stop());

    it("a request still queued past its max_queue_seconds fails deadline_exceeded, never runs, and is released", async () => {
      const admitted = await submit(platform.url, { prompt: "Once upon a time", max_length: 4, max_queue_seconds: 1 }, authorization);
      assert.equal(admitted.status, 202, JSON.stringify(admitted.body));
      assert.equal((await quotaOf(platform, authorization)).daily.requests, 1);
      const deadline = Date.parse(admitted.body.timestamp) + 1_000;
      await waitFor("the deadline to pass", () => Date.now() > deadline, 5_000);
      await platform.startConsumers();
      const final = await waitForFinal(platform.url, admitted.body.request_id, authorization);
      assert.equal(final.status, "failed");
      assert.equal(final.error.code, "deadline_exceeded");
      assert.equal(final.usage ?? null, null, "it never ran");
      const quota = await quotaOf(platform, authorization);
      assert.deepEqual(quota.daily, { requests: 0, tokens_used: 0, tokens_reserved: 0 }, "the reservation was given back");
    });

    it("with a measured throughput: accepted requests carry an estimate, the queue shows the backlog, an unmeetable deadline is refused with nothing reserved", async () => {
      for (let i = 0; i < 4; i++) {
        const done = await submit(platform.url, { prompt: "Once upon a time", max_length: 4 }, authorization);
        assert.equal((await waitForFinal(platform.url, done.body.request_id, authorization)).status, "completed");
      }
      await platform.worker?.stop(); // the backlog now stays
      const queued = [];
      for (let i = 0; i < 20; i++) queued.push(await submit(platform.url, { prompt: "Once upon a time", max_length: 4 }, authorization));
      assert.ok(queued.every((q) => q.status === 202));
      const last = queued.at(-1)!.body;
      assert.ok(last.estimated_start_at, "an estimate once something has finished");
      assert.ok(Date.parse(last.estimated_start_at) > Date.parse(last.timestamp), "behind a backlog the start is later than now");
      assert.ok(Date.parse(last.estimated_finish_at) >= Date.parse(last.estimated_start_at));

      const queue = (await (await fetch(`${platform.url}/api/v1/queue`, { headers: { authorization } })).json()) as Record<string, any>;
      assert.equal(queue.object, "queue");
      assert.equal(queue.backlog.interactive.requests, 20);
      assert.equal(queue.yours.open, 20);
      assert.equal(queue.yours.position, 1, "nobody else's requests are ahead of this user's oldest");
      assert.ok(queue.estimated_wait_seconds > 1, `the backlog waits ${queue.estimated_wait_seconds} s`);
      assert.ok(queue.throughput.estimated_tokens_per_second > 0);

      const before = await quotaOf(platform, authorization);
      const refused = await submit(platform.url, { prompt: "Once upon a time", max_length: 4, max_queue_seconds: 1 }, authorization);
      assert.equal(refused.status, 429, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, "queue_deadline_unmeetable");
      assert.ok(Number(refused.headers.get("retry-after")) >= 1);
      assert.deepEqual((await quotaOf(platform, authorization)).daily, before.daily, "nothing reserved or counted");
      const rows = await platform.database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM inference_requests");
      assert.equal(Number(rows.rows[0]?.n), 25, "nothing stored");

      const generous = await submit(platform.url, { prompt: "Once upon a time", max_length: 4, max_queue_seconds: 86_400 }, authorization);
      assert.equal(generous.status, 202, "a deadline the backlog meets is admitted");
    });

    it("max_queue_seconds out of range is a 400 naming it, on the native and the OpenAI routes", async () => {
      const native = await submit(platform.url, { prompt: "x", max_queue_seconds: 0 }, authorization);
      assert.equal(native.status, 400);
      assert.equal(native.body.error.details?.field ?? native.body.error.field, "max_queue_seconds");
      const chat = await fetch(`${platform.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization, "content-type": "application/json" },
        body: JSON.stringify({ model: platform.config.gateway.defaultModel, messages: [{ role: "user", content: "x" }], max_queue_seconds: "soon" }),
      });
      assert.equal(chat.status, 400);
      assert.equal(((await chat.json()) as { error: { param: string } }).error.param, "max_queue_seconds");
    });
  });
}

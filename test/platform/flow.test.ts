/**
 * The whole flow (admit → queue → model → collect → deliver) through the real components, on real
 * PostgreSQL, Redis and RabbitMQ and on the embedded adapters, with the trained model.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";
import { storeUnpublished } from "../support/requests.js";
import { openEvents, type OpenStream } from "../support/sse.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`request flow on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    before(async () => {
      platform = await startPlatform({ backend, anonymous: true });
    });
    after(async () => platform?.stop());

    it("the guide's request (JSON sent as form-urlencoded) is admitted and completes with usage", async () => {
      const response = await fetch(`${platform.url}/api/v1/inference`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: '{"prompt": "test prompt"}',
      });
      assert.equal(response.status, 202);
      const accepted = (await response.json()) as Record<string, string>;
      assert.equal(accepted.status, "queued");
      assert.equal(accepted.status_url, `/api/v1/status/${accepted.request_id}`);
      assert.equal(accepted.events_url, `/events/${accepted.request_id}`);
      const final = await waitForFinal(platform.url, accepted.request_id as string, undefined);
      assert.equal(final.status, "completed");
      assert.equal(typeof final.result.output_text, "string");
      assert.ok(final.usage.prompt_tokens > 0);
      assert.ok(final.usage.completion_tokens > 0);
      assert.equal(final.usage.total_tokens, final.usage.prompt_tokens + final.usage.completion_tokens);
    });

    it("greedy generation gives the trained model's story", async () => {
      const user = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "Once upon a time", temperature: 0, max_length: 30 }, user.authorization);
      assert.equal(accepted.status, 202);
      const final = await waitForFinal(platform.url, accepted.body.request_id, user.authorization);
      assert.match(final.result.output_text, /Lily/);
      assert.ok(final.usage.completion_tokens <= 30);
    });

    it("used tokens equal the sum of real usage: no double count, nothing left reserved", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const accepted = await submit(platform.url, { prompt: `Tom had a ball number ${i}`, max_length: 12 + i }, user.authorization);
        assert.equal(accepted.status, 202);
        ids.push(accepted.body.request_id);
      }
      let sum = 0;
      for (const id of ids) {
        const final = await waitForFinal(platform.url, id, user.authorization);
        assert.equal(final.status, "completed");
        sum += final.usage.total_tokens;
      }
      const quota = (await (await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: user.authorization } })).json()) as any;
      assert.equal(quota.daily.requests, 6);
      assert.equal(quota.daily.tokens_used, sum);
      assert.equal(quota.daily.tokens_reserved, 0);
      assert.equal(quota.monthly.tokens_used, sum);
      assert.equal(quota.limits.daily.tokens, 100_000);
      assert.ok(Date.parse(quota.resets.daily) > Date.now());
      const ledger = await platform.database.db.query<{ t: number }>(
        "SELECT COALESCE(SUM(total_tokens), 0)::int AS t FROM usage_ledger WHERE user_id = $1",
        [user.userId],
      );
      assert.equal(ledger.rows[0]?.t, sum, "the durable ledger agrees with the live counters");
    });

    it("SSE delivers the final event to a client that connects after completion", async () => {
      const user = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "The cat", max_length: 8 }, user.authorization);
      await waitForFinal(platform.url, accepted.body.request_id, user.authorization);
      // No heartbeat fires on this replica while the test runs, so no heartbeat's re-read can stand
      // in: only the read made when the client connects can deliver the final event.
      const replica = await platform.startApiReplica({ sseHeartbeatMs: 600_000 });
      let stream: OpenStream | undefined;
      try {
        stream = await openEvents(`${replica.url}${accepted.body.events_url}`, user.authorization);
        assert.equal(stream.status, 200);
        await stream.closed(5_000);
        assert.equal(stream.heartbeats, 0);
        const last = stream.events.at(-1);
        assert.equal(last?.event, "completed");
        assert.equal(last?.data.request_id, accepted.body.request_id);
        assert.ok(last?.data.usage.total_tokens > 0);
      } finally {
        stream?.abort();
        await replica.stop();
      }
    });

    it("SSE on another replica than the one that saw the result gets the final event through the bus, with heartbeats", async () => {
      const user = await platform.createUser();
      // Stored as admission stores it but never published: it waits, with heartbeats, until the test
      // hands its outcome to the collector.
      const requestId = await storeUnpublished(platform, user.userId, "A big dog");
      const replica = await platform.startApiReplica({ sseHeartbeatMs: 1_000 });
      const stream = await openEvents(`${replica.url}/events/${requestId}`, user.authorization);
      try {
        assert.equal(stream.status, 200);
        await stream.until((s) => s.heartbeats >= 2);
        assert.deepEqual(
          stream.events.map((e) => e.event),
          ["queued"],
        );
        // Right after a heartbeat, the next re-read is a second away: an outcome that arrives before
        // it came through the collector's event bus to this replica's subscription.
        const heartbeatsBefore = stream.heartbeats;
        const outcome = {
          v: 1,
          request_id: requestId,
          user_id: user.userId,
          status: "completed",
          output_text: "A big dog ran.",
          usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
          attempt: 1,
          at: new Date().toISOString(),
        };
        await platform.queue.publish(platform.queues.results, Buffer.from(JSON.stringify(outcome)));
        await stream.closed();
        const final = stream.events.at(-1);
        assert.equal(final?.event, "completed");
        assert.equal(final?.data.request_id, requestId);
        assert.equal(final?.data.result.output_text, "A big dog ran.");
        assert.equal(stream.heartbeats, heartbeatsBefore, "delivered by the event bus, not by a heartbeat's re-read");
      } finally {
        stream.abort();
        await replica.stop();
      }
    });

    it("a user sees only their own requests", async () => {
      const alice = await platform.createUser();
      const bob = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "Hello", max_length: 5 }, alice.authorization);
      const asBob = await fetch(`${platform.url}/api/v1/status/${accepted.body.request_id}`, { headers: { authorization: bob.authorization } });
      assert.equal(asBob.status, 404);
      assert.equal(((await asBob.json()) as any).error.code, "request_not_found");
      const events = await fetch(`${platform.url}/events/${accepted.body.request_id}`, { headers: { authorization: bob.authorization } });
      assert.equal(events.status, 404);
      const malformed = await fetch(`${platform.url}/api/v1/status/not-a-uuid`, { headers: { authorization: alice.authorization } });
      assert.equal(malformed.status, 400);
      assert.equal(((await malformed.json()) as any).error.code, "invalid_request_id");
      await waitForFinal(platform.url, accepted.body.request_id, alice.authorization);
    });

    it("a request the model rejects for its own input is stored as failed with its code, and counts as a request with no tokens", async () => {
      const user = await platform.createUser({ dailyRequests: 10 });
      // Longer than the model's 2,048-token context: the ML Service answers 400 (permanent).
      const prompt = "Once upon a time there was a cat. ".repeat(400);
      const accepted = await submit(platform.url, { prompt, max_length: 10 }, user.authorization);
      assert.equal(accepted.status, 202);
      const final = await waitForFinal(platform.url, accepted.body.request_id, user.authorization);
      assert.equal(final.status, "failed");
      assert.equal(final.result, null);
      assert.equal(final.error.code, "prompt_too_long");
      const quota = (await (await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: user.authorization } })).json()) as any;
      assert.equal(quota.daily.tokens_reserved, 0, "the reservation is settled");
      assert.equal(quota.daily.tokens_used, 0, "no tokens are charged");
      assert.equal(quota.daily.requests, 1, "a failure of the request's own input counts against the request limit");
    });

    it("a duplicate outcome changes nothing", async () => {
      const user = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "One day", max_length: 6 }, user.authorization);
      const final = await waitForFinal(platform.url, accepted.body.request_id, user.authorization);
      const before = (await (await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: user.authorization } })).json()) as any;
      const duplicate = {
        v: 1,
        request_id: accepted.body.request_id,
        user_id: user.userId,
        status: "completed",
        output_text: "something else",
        usage: { prompt_tokens: 1, completion_tokens: 999, total_tokens: 1000 },
        attempt: 1,
        at: new Date().toISOString(),
      };
      assert.equal(await platform.collector.handle(Buffer.from(JSON.stringify(duplicate))), "ack");
      assert.equal(await platform.collector.handle(Buffer.from(JSON.stringify({ ...duplicate, status: "failed", error: { code: "x", message: "y" } }))), "ack");
      const after = (await (await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: user.authorization } })).json()) as any;
      assert.deepEqual(after.daily, before.daily);
      const again = await waitForFinal(platform.url, accepted.body.request_id, user.authorization);
      assert.deepEqual(again, final);
    });

    it("an unreadable outcome is dead-lettered", async () => {
      assert.equal(await platform.collector.handle(Buffer.from("{not json")), "dead_letter");
      assert.equal(await platform.collector.handle(Buffer.from(JSON.stringify({ v: 2, hello: 1 }))), "dead_letter");
    });
  });
}

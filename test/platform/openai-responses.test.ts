/**
 * The Responses API and cancellation, with the official `openai` client, on the real servers and on
 * the embedded adapters with the trained model: background responses, streams resumed with
 * starting_after, cancels of running and queued requests (charged what was processed, or nothing),
 * and cancels racing completion (exactly one outcome; counters equal the ledger).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { quotaOf, startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));


async function ledgerOf(platform: Platform, userId: string) {
  const result = await platform.database.db.query<{ n: number; tokens: number }>(
    "SELECT count(*)::int AS n, COALESCE(sum(total_tokens), 0)::int AS tokens FROM usage_ledger WHERE user_id = $1",
    [userId],
  );
  return { rows: Number(result.rows[0]?.n ?? 0), tokens: Number(result.rows[0]?.tokens ?? 0) };
}

/** A prompt the trained model answers at length (it does not stop early at temperature 0). */
const LONG = { input: "Once upon a time, there was a little girl named Lily. She", max_output_tokens: 400, temperature: 0 };

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`Responses and cancellation on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    const model = "default";
    const clientFor = (authorization: string) => new OpenAI({ baseURL: `${platform.url}/v1`, apiKey: authorization.replace(/^Bearer /, ""), maxRetries: 0 });

    before(async () => {
      platform = await startPlatform({ backend });
    });
    after(async () => platform?.stop());

    it("a background response is queued at once, then retrieved until completed, charged its usage", async () => {
      const user = await platform.createUser({ dailyRequests: 10 });
      const client = clientFor(user.authorization);
      const { data: created, response: answer } = await client.responses
        .create({ model, input: "Tom had a red ball.", max_output_tokens: 20, temperature: 0, background: true, metadata: { job: "7" } })
        .withResponse();
      assert.equal(created.status, "queued");
      // Counted from the reservation itself: this request is in them already.
      assert.equal(answer.headers.get("x-ratelimit-remaining-requests"), "9");
      assert.match(created.id, /^resp_/);
      let response = created;
      while (response.status === "queued" || response.status === "in_progress") response = await client.responses.retrieve(created.id);
      assert.ok(["completed", "incomplete"].includes(String(response.status)), response.status);
      assert.ok(response.output_text.length > 0);
      assert.deepEqual(response.metadata, { job: "7" });
      const quota = await quotaOf(platform, user.authorization);
      assert.equal(quota.daily.tokens_used, response.usage!.total_tokens);
      assert.equal(quota.daily.tokens_reserved, 0);
      await assert.rejects(clientFor((await platform.createUser()).authorization).responses.retrieve(created.id), OpenAI.NotFoundError);
    });

    it("a streamed response numbers its events 0, 1, 2, … and its deltas make its text", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const stream = await client.responses.create({ model, input: "Lily and Ben", max_output_tokens: 30, temperature: 0, stream: true });
      const numbers: number[] = [];
      let text = "";
      let final: OpenAI.Responses.Response | undefined;
      for await (const event of stream) {
        numbers.push(event.sequence_number);
        if (event.type === "response.output_text.delta") text += event.delta;
        if (event.type === "response.completed" || event.type === "response.incomplete") final = event.response;
      }
      assert.deepEqual(numbers, numbers.map((_, i) => i));
      assert.ok(final);
      assert.equal(text, (final.output[0] as OpenAI.Responses.ResponseOutputMessage).content.map((c) => ("text" in c ? c.text : "")).join(""));
      const stored = await client.responses.retrieve(final.id);
      assert.equal(stored.output_text, text);
    });

    it("a stream dropped after a few deltas and resumed with starting_after yields every delta exactly once", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const first = await client.responses.create({ model, ...LONG, max_output_tokens: 60, background: true, stream: true });
      let id = "";
      let last = -1;
      const deltas: string[] = [];
      for await (const event of first) {
        if (event.type === "response.created") id = event.response.id;
        last = event.sequence_number;
        if (event.type === "response.output_text.delta") deltas.push(event.delta);
        if (deltas.length === 3) break; // the client drops the connection
      }
      const resumed = await client.responses.retrieve(id, { stream: true, starting_after: last });
      const numbers: number[] = [];
      for await (const event of resumed) {
        numbers.push(event.sequence_number);
        if (event.type === "response.output_text.delta") deltas.push(event.delta);
      }
      assert.equal(numbers[0], last + 1, "no gap");
      assert.deepEqual(numbers, numbers.map((_, i) => last + 1 + i), "no gap and no duplicate");
      const done = await client.responses.retrieve(id);
      assert.equal(deltas.join(""), done.output_text);
    });

    it("cancelling a long generation ends it cancelled, charged no more than was generated", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const stream = await client.responses.create({ model, ...LONG, background: true, stream: true });
      let id = "";
      let seen = 0;
      for await (const event of stream) {
        if (event.type === "response.created") id = event.response.id;
        if (event.type === "response.output_text.delta" && ++seen === 3) break;
      }
      const cancelled = await client.responses.cancel(id);
      assert.equal(cancelled.status, "cancelled");
      const usage = cancelled.usage!;
      assert.ok(usage.output_tokens >= 3 && usage.output_tokens < LONG.max_output_tokens, JSON.stringify(usage));
      const quota = await quotaOf(platform, user.authorization);
      assert.equal(quota.daily.tokens_used, usage.total_tokens, "charged exactly what was processed");
      assert.equal(quota.daily.tokens_reserved, 0);
      assert.deepEqual(await ledgerOf(platform, user.userId), { rows: 1, tokens: usage.total_tokens });
    });

    it("POST /api/v1/inference/{id}/cancel: only the owner may; a finished request stays as it was", async () => {
      const owner = await platform.createUser();
      const other = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "Hello", max_length: 4 }, owner.authorization);
      const id = accepted.body.request_id as string;
      const foreign = await fetch(`${platform.url}/api/v1/inference/${id}/cancel`, { method: "POST", headers: { authorization: other.authorization } });
      assert.equal(foreign.status, 404);
      assert.equal(((await foreign.json()) as { error: { code: string } }).error.code, "request_not_found");
      const final = await waitForFinal(platform.url, id, owner.authorization);
      assert.equal(final.status, "completed");
      const late = await fetch(`${platform.url}/api/v1/inference/${id}/cancel`, { method: "POST", headers: { authorization: owner.authorization } });
      assert.equal(late.status, 200);
      assert.equal(((await late.json()) as { status: string }).status, "completed");
    });

    it("cancels racing completion: every request ends once, and the counters equal the ledger", async () => {
      const user = await platform.createUser({ dailyTokens: 1_000_000 });
      const ids: string[] = [];
      for (let i = 0; i < 16; i++) {
        const accepted = await submit(platform.url, { prompt: `Tom and Lily ${i}`, max_length: 40, stream: i % 2 === 0 }, user.authorization);
        assert.equal(accepted.status, 202);
        ids.push(accepted.body.request_id as string);
      }
      await Promise.all(
        ids.map(async (id, i) => {
          await new Promise((resolve) => setTimeout(resolve, (i * 7) % 40));
          const response = await fetch(`${platform.url}/api/v1/inference/${id}/cancel`, { method: "POST", headers: { authorization: user.authorization } });
          assert.equal(response.status, 200);
        }),
      );
      const finals = await Promise.all(ids.map((id) => waitForFinal(platform.url, id, user.authorization)));
      for (const final of finals) assert.ok(["completed", "cancelled"].includes(final.status), final.status);
      const charged = finals.filter((f) => f.usage !== null);
      const quota = await quotaOf(platform, user.authorization);
      const ledger = await ledgerOf(platform, user.userId);
      assert.equal(quota.daily.tokens_reserved, 0);
      assert.equal(ledger.rows, charged.length);
      assert.equal(quota.daily.requests, ledger.rows, "a request that never ran is not counted");
      assert.equal(quota.daily.tokens_used, ledger.tokens);
      assert.equal(ledger.tokens, charged.reduce((sum, f) => sum + f.usage.total_tokens, 0));
    });
  });
}

describe("a cancelled queued request never reaches the model", { skip: skipModel }, () => {
  it("is cancelled and released at once, and the worker that later takes it only acks it", async () => {
    const platform = await startPlatform({ backend: "embedded", consumers: false });
    try {
      const user = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "Never run", max_length: 8 }, user.authorization);
      const id = accepted.body.request_id as string;
      const response = await fetch(`${platform.url}/api/v1/inference/${id}/cancel`, { method: "POST", headers: { authorization: user.authorization } });
      assert.equal(((await response.json()) as { status: string }).status, "cancelled");
      const quota = await quotaOf(platform, user.authorization);
      assert.deepEqual([quota.daily.requests, quota.daily.tokens_reserved], [0, 0]);
      await platform.startConsumers();
      // The worker's own count says it took the message and did not run it.
      for (;;) {
        const metrics = await (await fetch(`${platform.url}/metrics`)).text();
        if (/worker_outcomes_total\{status="cancelled",code=""\} 1/.test(metrics)) {
          assert.doesNotMatch(metrics, /worker_outcomes_total\{status="completed"/);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const final = await waitForFinal(platform.url, id, user.authorization);
      assert.equal(final.status, "cancelled");
      assert.equal(final.usage, null);
    } finally {
      await platform.stop();
    }
  });
});

/**
 * The official `openai` client pointed at the gateway, on the real servers and on the embedded
 * adapters, with the trained model: chat and completions, streamed and not, through the whole
 * pipeline (admitted, stored, queued, run by a worker, settled by the collector).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { quotaOf, startPlatform, waitForFinal, type Backend, type Platform } from "../support/platform.js";
import { idempotentRequestId } from "../../src/components/gateway/admission.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));


for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`the OpenAI SDK against the gateway on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    let model: string;
    const clientFor = (authorization: string, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) =>
      new OpenAI({ baseURL: `${platform.url}/v1`, apiKey: authorization.replace(/^Bearer /, ""), maxRetries: 0, ...options });

    before(async () => {
      platform = await startPlatform({ backend });
      const user = await platform.createUser();
      model = (await clientFor(user.authorization).models.list()).data[0]!.id;
    });
    after(async () => platform?.stop());

    it("chat: the answer comes when the request is final, and the quota moves by exactly its usage", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const before = await quotaOf(platform, user.authorization);
      const { data: chat, response } = await client.chat.completions
        .create({ model, messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 24, temperature: 0, seed: 7 })
        .withResponse();
      assert.equal(chat.object, "chat.completion");
      assert.match(chat.id, /^chatcmpl-/);
      assert.equal(chat.choices[0]!.message.role, "assistant");
      assert.ok(chat.choices[0]!.message.content!.length > 0);
      assert.ok(["stop", "length"].includes(chat.choices[0]!.finish_reason));
      const usage = chat.usage!;
      assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0 && usage.completion_tokens <= 24);
      assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
      const after = await quotaOf(platform, user.authorization);
      assert.equal(after.daily.tokens_used - before.daily.tokens_used, usage.total_tokens);
      assert.equal(after.daily.requests - before.daily.requests, 1);
      assert.equal(after.daily.tokens_reserved, 0, "nothing stays reserved once the answer is out");
      assert.ok(Number(response.headers.get("x-ratelimit-limit-tokens")) === 100_000);
      assert.equal(Number(response.headers.get("x-ratelimit-remaining-tokens")), 100_000 - after.daily.tokens_used);
      assert.match(response.headers.get("x-ratelimit-reset-tokens") ?? "", /^(\d+h)?(\d+m)?\d+s$|^\d+ms$/);
    });

    it("chat streamed: the chunks' text equals the non-streamed text (temperature 0, same seed), usage last", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const body = { model, messages: [{ role: "user" as const, content: "Tom and his dog" }], max_tokens: 30, temperature: 0, seed: 3 };
      const whole = await client.chat.completions.create(body);
      const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
      let text = "";
      let deltas = 0;
      let usage: OpenAI.CompletionUsage | null | undefined;
      let finish: string | null = null;
      for await (const chunk of stream) {
        assert.equal(chunk.object, "chat.completion.chunk");
        const choice = chunk.choices[0];
        if (choice?.delta.content) {
          text += choice.delta.content;
          deltas++;
        }
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (chunk.usage) usage = chunk.usage;
      }
      assert.equal(text, whole.choices[0]!.message.content);
      assert.ok(deltas > 1, "text arrived in more than one piece");
      assert.equal(finish, whole.choices[0]!.finish_reason);
      assert.deepEqual(usage, whole.usage);
    });

    it("completions, streamed and not, give the same text", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const body = { model, prompt: "Once upon a time", max_tokens: 20, temperature: 0, seed: 1 };
      const whole = await client.completions.create(body);
      assert.equal(whole.object, "text_completion");
      let text = "";
      for await (const chunk of await client.completions.create({ ...body, stream: true })) text += chunk.choices[0]?.text ?? "";
      assert.equal(text, whole.choices[0]!.text);
      assert.match(text, /Lily/);
    });

    it("a quota limit surfaces as RateLimitError, with Retry-After and the rate-limit headers", async () => {
      const user = await platform.createUser({ dailyRequests: 1 });
      const client = clientFor(user.authorization);
      await client.completions.create({ model, prompt: "Hi", max_tokens: 2 });
      await assert.rejects(client.completions.create({ model, prompt: "Hi", max_tokens: 2 }), (error: unknown) => {
        assert.ok(error instanceof OpenAI.RateLimitError, String(error));
        assert.equal(error.status, 429);
        assert.equal(error.code, "quota_exceeded");
        assert.ok(Number(error.headers?.get("retry-after")) > 0);
        assert.equal(error.headers?.get("x-ratelimit-remaining-requests"), "0");
        return true;
      });
    });

    it("a bad body is BadRequestError naming the field (param), and nothing is reserved", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      for (const [body, param] of [
        [{ model, messages: [{ role: "user", content: "x" }], temperature: 5 }, "temperature"],
        [{ model, messages: [] }, "messages"],
        [{ model, messages: [{ role: "user", content: "x" }], n: 2, stream: true }, "n"],
        [{ model, messages: [{ role: "user", content: "x" }], tools: [] }, "tools"],
      ] as const) {
        await assert.rejects(client.chat.completions.create(body as never), (error: unknown) => {
          assert.ok(error instanceof OpenAI.BadRequestError, String(error));
          assert.equal(error.param, param);
          return true;
        });
      }
      await assert.rejects(client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }), OpenAI.NotFoundError);
      await assert.rejects(clientFor("Bearer nope").models.list(), OpenAI.AuthenticationError);
      const quota = await quotaOf(platform, user.authorization);
      assert.equal(quota.daily.requests, 0);
      assert.equal(quota.daily.tokens_reserved, 0);
    });

    it("an Idempotency-Key sent twice at once admits one request; the same key with another body is 409", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const body = { model, prompt: "The cat", max_tokens: 8, temperature: 0 };
      const options = { headers: { "Idempotency-Key": "retry-safe-1" } };
      const [a, b] = await Promise.all([client.completions.create(body, options), client.completions.create(body, options)]);
      assert.equal(a.id, b.id);
      assert.equal(a.choices[0]!.text, b.choices[0]!.text);
      const quota = await quotaOf(platform, user.authorization);
      assert.equal(quota.daily.requests, 1, "one reservation for both calls");
      assert.equal(quota.daily.tokens_used, a.usage!.total_tokens);
      await assert.rejects(client.completions.create({ ...body, max_tokens: 9 }, options), (error: unknown) => {
        assert.ok(error instanceof OpenAI.ConflictError, String(error));
        assert.equal(error.code, "idempotency_key_reused");
        return true;
      });
    });

    it("a client that goes away from a call it waits on cancels the request", async () => {
      const user = await platform.createUser();
      const client = clientFor(user.authorization);
      const controller = new AbortController();
      const call = client.chat.completions.create(
        { model, messages: [{ role: "user", content: "A long story" }], max_tokens: 500, stream: true },
        { signal: controller.signal, headers: { "Idempotency-Key": "walk-away" } },
      );
      const stream = await call;
      let deltas = 0;
      try {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta.content && ++deltas === 3) controller.abort();
        }
      } catch {
        // The SDK may end the loop with an abort error, or quietly.
      }
      assert.equal(deltas, 3, "nothing is read after the abort");
      const requestId = idempotentRequestId(user.userId, "walk-away");
      const final = await waitForFinal(platform.url, requestId, user.authorization);
      assert.equal(final.status, "cancelled", JSON.stringify(final));
      assert.ok(final.usage === null || final.usage.completion_tokens >= 3);
      const quota = await quotaOf(platform, user.authorization);
      assert.equal(quota.daily.tokens_reserved, 0);
      assert.equal(quota.daily.tokens_used, final.usage?.total_tokens ?? 0);
    });
  });
}

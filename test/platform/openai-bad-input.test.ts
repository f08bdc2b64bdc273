/**
 * Generated bodies at the OpenAI routes, on the real servers and on the embedded adapters, no model
 * needed: every answer is 200 (a valid body: the stream opens, the test walks away, which cancels
 * the request) or a 4xx in OpenAI's error shape with a stable code of the table and no internals;
 * nothing is stored for a refused body, and in the end nothing stays reserved or counted.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { requireServices } from "../support/services.js";
import { startPlatform, type Backend, type Platform } from "../support/platform.js";
import { ERRORS, isErrorCode } from "../../src/errors.js";

const skipServers = await requireServices("postgres", "redis", "rabbitmq");
const NO_ML = "http://127.0.0.1:9";

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`OpenAI routes under generated input on ${backend}`, { skip: backend === "servers" ? skipServers : undefined }, () => {
    let platform: Platform;
    before(async () => {
      platform = await startPlatform({ backend, consumers: false, mlServiceUrl: NO_ML, env: { MAX_PROMPT_CHARS: "100" } });
    });
    after(async () => platform?.stop());

    it("property: 200 or a 4xx with OpenAI's error shape; stored = opened; nothing left reserved", async () => {
      const user = await platform.createUser();
      const weird = fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -5, max: 5000 }), fc.double(), fc.string({ maxLength: 8 }), fc.array(fc.integer(), { maxLength: 3 }), fc.object({ maxDepth: 1 }));
      // Bodies of two kinds: every field good (each such body is valid), or each field mostly good
      // and otherwise anything, or a value just past its bounds; now and then with a field OpenAI
      // has and this platform does not.
      const bodies = (clean: boolean) => {
        const field = <T>(good: fc.Arbitrary<T>, ...edges: unknown[]): fc.Arbitrary<unknown> =>
          clean ? good : fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: edges.length > 0 ? fc.constantFrom(...edges) : weird }, { weight: 1, arbitrary: weird });
        const message = fc.record({ role: field(fc.constantFrom("user", "system", "assistant", "developer"), "tool"), content: field(fc.string({ minLength: 1, maxLength: 30 }).filter((t) => t.trim().length > 0), "", "x".repeat(101)) });
        const common = {
          model: field(fc.constant("default"), "gpt-4o"),
          max_tokens: field(fc.integer({ min: 1, max: 500 }), 0, 501),
          temperature: field(fc.double({ min: 0, max: 2, noNaN: true }), -0.01, 2.01),
          top_p: field(fc.double({ min: 0.01, max: 1, noNaN: true }), 0, 1.01),
          n: field(fc.constant(1), 0, 2),
          stop: field(fc.oneof(fc.string({ minLength: 1, maxLength: 64 }), fc.array(fc.string({ minLength: 1, maxLength: 10 }), { maxLength: 4 })), "", ["x".repeat(65)]),
          seed: field(fc.integer({ min: 0, max: 2 ** 31 - 1 }), -1, 2 ** 31),
          top_k: field(fc.integer({ min: 0, max: 1000 }), -1, 1001),
        };
        // Good prompts fit MAX_PROMPT_CHARS (100).
        const chat = fc.record({ ...common, messages: field(fc.array(message, { minLength: 1, maxLength: 3 }), []) }, { requiredKeys: ["model", "messages"] });
        const prompt = fc.string({ minLength: 1, maxLength: 90 }).filter((t) => t.trim().length > 0);
        const completion = fc.record({ ...common, prompt: field(prompt, "", "a\u0000b", "p".repeat(101)) }, { requiredKeys: ["model", "prompt"] });
        const extra = clean ? fc.constant(undefined) : fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.record({ tools: weird }) });
        return fc.oneof(fc.tuple(fc.constant("/v1/chat/completions"), chat, extra), fc.tuple(fc.constant("/v1/completions"), completion, extra));
      };
      const call = fc.oneof({ weight: 1, arbitrary: bodies(true) }, { weight: 2, arbitrary: bodies(false) });
      let opened = 0;
      const refusals = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(call, async ([route, generated, more]) => {
          // Streamed, so a valid body answers at once (a held call would wait for a worker that is not running).
          const body = { ...generated, ...(more ?? {}), stream: true };
          const controller = new AbortController();
          const response = await fetch(`${platform.url}${route}`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: user.authorization },
            body: JSON.stringify(body),
            signal: controller.signal,
          });
          if (response.status === 200) {
            opened++;
            assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
            controller.abort();
            return;
          }
          const text = await response.text();
          const label = `${route} ${JSON.stringify(body).slice(0, 200)} → ${response.status} ${text.slice(0, 200)}`;
          assert.ok(response.status >= 400 && response.status < 500, label);
          const error = (JSON.parse(text) as { error: { message: string; type: string; param: string | null; code: string } }).error;
          assert.ok(isErrorCode(error.code), label);
          refusals.set(error.code, (refusals.get(error.code) ?? 0) + 1);
          assert.equal(ERRORS[error.code as keyof typeof ERRORS].status, response.status, label);
          assert.equal(typeof error.message, "string", label);
          assert.ok(["invalid_request_error", "not_found_error", "authentication_error", "permission_error", "rate_limit_error"].includes(error.type) || error.type.length > 0, label);
          assert.doesNotMatch(text, /"stack"|\n\s+at |node:internal|\/src\/|\.ts:\d+/, label);
        }),
        { numRuns: 120 },
      );
      assert.ok(opened > 0, `some generated bodies were valid (refusals: ${JSON.stringify([...refusals])})`);
      // Every opened stream was walked away from: each is cancelled before it ran, and released.
      const rows = async () =>
        (await platform.database.db.query<{ status: string; n: number }>("SELECT status, count(*)::int AS n FROM inference_requests WHERE user_id = $1 GROUP BY status", [user.userId])).rows;
      for (;;) {
        const now = await rows();
        if (now.every((r) => r.status === "cancelled")) {
          assert.equal(now.reduce((sum, r) => sum + Number(r.n), 0), opened, "one stored request per opened stream, none per refusal");
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const usage = await platform.quota.usage(user.userId, new Date());
      assert.deepEqual([usage.daily.requests, usage.daily.tokensReserved], [0, 0]);
    });
  });
}

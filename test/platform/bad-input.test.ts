/**
 * Hostile, malformed and oversized input at every public endpoint, on real PostgreSQL, Redis and
 * RabbitMQ and on the embedded adapters: always a 4xx with a stable `{error:{code,message}}`, never a
 * 5xx or a stack trace, and nothing stored or reserved. Over quota: 429 with Retry-After naming the
 * limit. Dependencies down at admission: 503, reservation given back, nothing stored.
 * No model is needed: consumers are off and the ML Service URL is a closed port.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import pg from "pg";
import { requireServices, TEST_URLS } from "../support/services.js";
import { startPlatform, type Backend, type Platform } from "../support/platform.js";
import { parseInferenceBody } from "../../src/domain/inference-request.js";
import { ERROR_STATUS } from "../../src/errors.js";

const skipServers = await requireServices("postgres", "redis", "rabbitmq");

const BODY_LIMIT = 1024;
const MAX_PROMPT_CHARS = 100;
const ENV = { BODY_LIMIT_BYTES: String(BODY_LIMIT), MAX_PROMPT_CHARS: String(MAX_PROMPT_CHARS) };
const NO_ML = "http://127.0.0.1:9";

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  text: string;
  json: any;
}

async function inject(
  platform: Platform,
  options: { method?: "GET" | "POST" | "PUT" | "DELETE"; url: string; payload?: string; headers?: Record<string, string> },
): Promise<Answer> {
  const response = await platform.app.inject({
    method: options.method ?? "GET",
    url: options.url,
    ...(options.payload === undefined ? {} : { payload: options.payload }),
    headers: options.headers ?? {},
  });
  let json: any;
  try {
    json = JSON.parse(response.body);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, text: response.body, json };
}

function post(platform: Platform, body: unknown, authorization?: string, contentType = "application/json"): Promise<Answer> {
  return inject(platform, {
    method: "POST",
    url: "/api/v1/inference",
    payload: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": contentType, ...(authorization ? { authorization } : {}) },
  });
}

/** A client error with the stable shape, the status of the one table, and no stack trace. */
function assertError(answer: Answer, status: number, code: string, what = ""): void {
  const label = `${what} → ${answer.status} ${answer.text.slice(0, 300)}`;
  assert.equal(answer.status, status, label);
  assert.match(String(answer.headers["content-type"]), /^application\/json/, label);
  assert.equal(typeof answer.json?.error, "object", label);
  assert.equal(answer.json.error.code, code, label);
  assert.equal(ERROR_STATUS[code as keyof typeof ERROR_STATUS], status, label);
  assert.equal(typeof answer.json.error.message, "string", label);
  assert.ok(answer.json.error.message.length > 0, label);
  assertNoStack(answer.text, label);
}

function assertNoStack(text: string, label: string): void {
  assert.doesNotMatch(text, /"stack"|\n\s+at |\bat [\w.<>]+ \(|node:internal|\/src\/|\.ts:\d+/, label);
}

async function storedFor(platform: Platform, userId: string): Promise<number> {
  const result = await platform.database.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM inference_requests WHERE user_id = $1",
    [userId],
  );
  return Number(result.rows[0]?.n ?? 0);
}

async function assertNothingHeld(platform: Platform, userId: string, what: string): Promise<void> {
  assert.equal(await storedFor(platform, userId), 0, `${what}: no request stored`);
  const usage = await platform.quota.usage(userId, new Date());
  assert.equal(usage.daily.requests, 0, `${what}: no request counted`);
  assert.equal(usage.daily.tokensReserved, 0, `${what}: nothing reserved`);
  assert.equal(usage.monthly.requests, 0, `${what}: no request counted this month`);
  assert.equal(usage.monthly.tokensReserved, 0, `${what}: nothing reserved this month`);
}

/** Parameters out of range or of the wrong type: each must be 400 invalid_parameter naming the field. */
const BAD_PARAMS: Array<[string, unknown]> = [
  ["max_length", 0],
  ["max_length", 501],
  ["max_length", -1],
  ["max_length", 1.5],
  ["max_length", "100"],
  ["max_length", null],
  ["max_length", true],
  ["max_length", []],
  ["max_length", {}],
  ["temperature", -0.01],
  ["temperature", 2.01],
  ["temperature", "0.7"],
  ["temperature", null],
  ["top_p", 0],
  ["top_p", -0.5],
  ["top_p", 1.01],
  ["top_p", "0.9"],
  ["top_k", -1],
  ["top_k", 1001],
  ["top_k", 2.5],
  ["top_k", "50"],
  ["repetition_penalty", 0.49],
  ["repetition_penalty", 2.01],
  ["repetition_penalty", "1.2"],
  ["repetition_penalty", [1.2]],
  ["num_return_sequences", 0],
  ["num_return_sequences", 6],
  ["num_return_sequences", 1.5],
  ["num_return_sequences", "1"],
  ["seed", -1],
  ["seed", 2 ** 31],
  ["seed", 1.5],
  ["seed", "42"],
  ["seed", null],
  ["stream", "true"],
  ["stream", 1],
  ["stream", null],
  ["stop", ""],
  ["stop", [""]],
  ["stop", ["x".repeat(65)]],
  ["stop", ["a", "b", "c", "d", "e"]],
  ["stop", [1]],
  ["stop", 5],
  ["stop", {}],
  ["stop", null],
  ["model", 5],
  ["model", null],
  ["prompt", 5],
  ["prompt", null],
  ["prompt", true],
  ["prompt", ["hello"]],
  ["prompt", { text: "hello" }],
  ["prompt", "a\u0000b"],
];

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`bad input on ${backend}`, { skip: backend === "servers" ? skipServers : undefined }, () => {
    let platform: Platform;
    let user: { userId: string; authorization: string };

    before(async () => {
      platform = await startPlatform({ backend, anonymous: false, consumers: false, mlServiceUrl: NO_ML, env: ENV });
      user = await platform.createUser();
    });
    after(async () => platform?.stop());

    it("malformed bodies: invalid JSON, empty, and JSON that is not an object", async () => {
      const cases: Array<[string, string, number, string]> = [
        ["invalid JSON", "{", 400, "invalid_json"],
        ["single quotes", "{'prompt': 'x'}", 400, "invalid_json"],
        ["trailing comma", '{"prompt": "x",}', 400, "invalid_json"],
        ["NaN literal", '{"prompt": "x", "temperature": NaN}', 400, "invalid_json"],
        ["form field instead of JSON", "prompt=hello", 400, "invalid_json"],
        ["whitespace body", "   \n  ", 400, "invalid_json"],
        ["JSON array", '[{"prompt": "x"}]', 400, "invalid_body"],
        ["empty array", "[]", 400, "invalid_body"],
        ["JSON string", '"hello"', 400, "invalid_body"],
        ["JSON number", "42", 400, "invalid_body"],
        ["JSON null", "null", 400, "invalid_body"],
        ["JSON boolean", "true", 400, "invalid_body"],
        ["deeply nested", `${"[".repeat(400)}${"]".repeat(400)}`, 400, "invalid_body"],
        ["number overflowing to Infinity", '{"prompt": "x", "max_length": 1e309}', 400, "invalid_parameter"],
      ];
      for (const [what, payload, status, code] of cases) {
        for (const contentType of ["application/json", "application/x-www-form-urlencoded", "text/plain"]) {
          assertError(await post(platform, payload, user.authorization, contentType), status, code, `${what} as ${contentType}`);
        }
      }
      await assertNothingHeld(platform, user.userId, "malformed bodies");
    });

    it("an empty body is 400 invalid_json (with or without a content type)", async () => {
      assertError(await post(platform, "", user.authorization), 400, "invalid_json", "empty JSON body");
      const bare = await inject(platform, { method: "POST", url: "/api/v1/inference", headers: { authorization: user.authorization } });
      assert.ok(bare.status === 400, `no body, no content type → ${bare.status} ${bare.text}`);
      assert.ok(["invalid_json", "invalid_body"].includes(bare.json?.error?.code), bare.text);
      assertNoStack(bare.text, "bare POST");
      await assertNothingHeld(platform, user.userId, "empty body");
    });

    it("a missing, empty or whitespace prompt is 400 missing_prompt", async () => {
      for (const body of [{}, { max_length: 10 }, { prompt: "" }, { prompt: "   " }, { prompt: "\n\t \r\n" }]) {
        const answer = await post(platform, body, user.authorization);
        assertError(answer, 400, "missing_prompt", JSON.stringify(body));
        assert.equal(answer.json.error.details?.field, "prompt");
      }
      await assertNothingHeld(platform, user.userId, "missing prompt");
    });

    it("a prompt over MAX_PROMPT_CHARS is 400 prompt_too_long with the limit", async () => {
      const answer = await post(platform, { prompt: "p".repeat(MAX_PROMPT_CHARS + 1) }, user.authorization);
      assertError(answer, 400, "prompt_too_long");
      assert.equal(answer.json.error.details?.limit, MAX_PROMPT_CHARS);
      await assertNothingHeld(platform, user.userId, "long prompt");
    });

    it("every parameter out of range or of the wrong type is 400 invalid_parameter naming the field", async () => {
      for (const [field, value] of BAD_PARAMS) {
        const body = field === "prompt" ? { prompt: value } : { prompt: "hello", [field]: value };
        const answer = await post(platform, body, user.authorization);
        assertError(answer, 400, "invalid_parameter", `${field}=${JSON.stringify(value)}`);
        assert.equal(answer.json.error.details?.field, field, `${field}=${JSON.stringify(value)}`);
        assert.match(answer.json.error.message, new RegExp(`^${field}:`));
      }
      await assertNothingHeld(platform, user.userId, "bad parameters");
    });

    it("unknown fields, user_id included, are 400 unknown_field", async () => {
      for (const field of ["user_id", "userId", "PROMPT", "", "constructor", "__proto__", "x".repeat(500)]) {
        const payload = `{"prompt": "hello", ${JSON.stringify(field)}: "alice"}`;
        const answer = await post(platform, payload, user.authorization);
        assertError(answer, 400, "unknown_field", `field ${field.slice(0, 20)}`);
        assert.equal(answer.json.error.details?.field, field.slice(0, 64));
        if (field === "user_id") assert.match(answer.json.error.message, /API key/);
      }
      await assertNothingHeld(platform, user.userId, "unknown fields");
    });

    it("an unknown model is 404 model_not_found", async () => {
      for (const model of ["gpt-5", "", "DEFAULT", "../default", "x".repeat(300)]) {
        const answer = await post(platform, { prompt: "hello", model }, user.authorization);
        assertError(answer, 404, "model_not_found", `model ${model.slice(0, 20)}`);
        assert.ok(answer.text.length < 1000, "the message does not echo a huge model name");
      }
      await assertNothingHeld(platform, user.userId, "unknown model");
    });

    it("a body over BODY_LIMIT_BYTES is 413 payload_too_large", async () => {
      const big = JSON.stringify({ prompt: "p".repeat(BODY_LIMIT * 2) });
      for (const contentType of ["application/json", "text/plain", "application/x-www-form-urlencoded"]) {
        assertError(await post(platform, big, user.authorization, contentType), 413, "payload_too_large", contentType);
      }
      // Just over the limit: the limit is bytes, not characters.
      const multibyte = JSON.stringify({ prompt: "é".repeat(Math.ceil(BODY_LIMIT / 2)) });
      assert.ok(multibyte.length < BODY_LIMIT + 20 && Buffer.byteLength(multibyte) > BODY_LIMIT);
      assertError(await post(platform, multibyte, user.authorization), 413, "payload_too_large", "multibyte");
      // Also without credentials: the size is checked before anything else.
      assertError(await post(platform, big), 413, "payload_too_large", "anonymous big body");
      await assertNothingHeld(platform, user.userId, "big body");
    });

    it("an unsupported content type is 415 unsupported_media_type", async () => {
      for (const contentType of ["application/xml", "multipart/form-data; boundary=x", "application/octet-stream", "image/png"]) {
        assertError(await post(platform, '{"prompt":"hello"}', user.authorization, contentType), 415, "unsupported_media_type", contentType);
      }
      await assertNothingHeld(platform, user.userId, "content type");
    });

    it("missing, malformed, unknown and revoked keys are 401 unauthorized on every endpoint", async () => {
      const victim = await platform.createUser();
      const keyId = (
        await platform.database.db.query<{ key_id: string }>("SELECT key_id FROM api_keys WHERE user_id = $1", [victim.userId])
      ).rows[0]?.key_id as string;
      // The key works before it is revoked.
      assert.equal((await inject(platform, { url: "/api/v1/quota", headers: { authorization: victim.authorization } })).status, 200);
      assert.equal(await platform.users.revokeApiKey(keyId), true);

      const headers: Array<[string, Record<string, string>]> = [
        ["missing", {}],
        ["empty bearer", { authorization: "Bearer" }],
        ["bearer and spaces", { authorization: "Bearer    " }],
        ["basic scheme", { authorization: "Basic dXNlcjpwYXNz" }],
        ["no scheme", { authorization: "mli_abcdef" }],
        ["two tokens", { authorization: "Bearer a b" }],
        ["too long", { authorization: `Bearer ${"k".repeat(300)}` }],
        ["unknown key", { authorization: "Bearer mli_doesnotexist0000000000000000" }],
        ["revoked key", { authorization: victim.authorization }],
      ];
      const id = randomUUID();
      for (const [what, h] of headers) {
        assertError(
          await inject(platform, { method: "POST", url: "/api/v1/inference", payload: '{"prompt":"hello"}', headers: { "content-type": "application/json", ...h } }),
          401,
          "unauthorized",
          `inference, ${what}`,
        );
        assertError(await inject(platform, { url: `/api/v1/status/${id}`, headers: h }), 401, "unauthorized", `status, ${what}`);
        assertError(await inject(platform, { url: "/api/v1/quota", headers: h }), 401, "unauthorized", `quota, ${what}`);
        assertError(await inject(platform, { url: `/events/${id}`, headers: h }), 401, "unauthorized", `events, ${what}`);
      }
      for (const token of ["bad%20token", "", "mli_unknown", encodeURIComponent(victim.authorization.slice(7))]) {
        assertError(await inject(platform, { url: `/events/${id}?access_token=${token}` }), 401, "unauthorized", `events ?access_token=${token}`);
      }
      await assertNothingHeld(platform, victim.userId, "revoked key");
      assert.equal(await storedFor(platform, "anonymous"), 0, "anonymous access is off: nothing stored as anonymous");
    });

    it("unknown routes are 404 not_found; known routes with another method 405 method_not_allowed", async () => {
      const routes: Array<["GET" | "POST" | "PUT" | "DELETE", string, 404 | 405]> = [
        ["GET", "/nope", 404],
        ["GET", "/api/v1/nope", 404],
        ["GET", "/api/v2/inference", 404],
        ["GET", "/api/v1/inference", 405],
        ["PUT", "/api/v1/inference", 405],
        ["DELETE", `/api/v1/status/${randomUUID()}`, 405],
        ["POST", "/api/v1/quota", 405],
        ["GET", "/api/v1/status", 404],
        ["GET", "/events", 404],
        ["GET", `/${"x".repeat(5000)}`, 404],
        ["GET", "/..%2f..%2fetc%2fpasswd", 404],
      ];
      for (const [method, url, status] of routes) {
        const answer = await inject(platform, { method, url, headers: { authorization: user.authorization } });
        assertError(answer, status, status === 404 ? "not_found" : "method_not_allowed", `${method} ${url.slice(0, 40)}`);
        if (status === 405) assert.match(String(answer.headers.allow), /^(GET|POST)/, "Allow names the route's methods");
        assert.ok(answer.text.length < 600, "the message does not echo a huge path");
      }
      // In `all`, `/` leads to the web console.
      const root = await inject(platform, { url: "/" });
      assert.equal(root.status, 302);
      assert.match(String(root.headers.location), /^\/console\/?$/);
    });

    it("malformed request ids are 400 invalid_request_id; unknown or foreign ones 404 request_not_found", async () => {
      const auth = { authorization: user.authorization };
      for (const id of ["not-a-uuid", "1", "%00", "00000000-0000-0000-0000-00000000000g", `${randomUUID()}x`, "'%20OR%201=1--", "%F0%9F%92%A9"]) {
        assertError(await inject(platform, { url: `/api/v1/status/${id}`, headers: auth }), 400, "invalid_request_id", `status ${id}`);
        assertError(await inject(platform, { url: `/events/${id}`, headers: auth }), 400, "invalid_request_id", `events ${id}`);
      }
      for (const id of [randomUUID(), randomUUID().toUpperCase(), "00000000-0000-0000-0000-000000000000"]) {
        assertError(await inject(platform, { url: `/api/v1/status/${id}`, headers: auth }), 404, "request_not_found", `status ${id}`);
        assertError(await inject(platform, { url: `/events/${id}`, headers: auth }), 404, "request_not_found", `events ${id}`);
      }
    });

    it("over the daily request limit: 429 quota_exceeded, Retry-After, details.limit daily_requests", async () => {
      const limited = await platform.createUser({ dailyRequests: 2 });
      const other = await platform.createUser();
      const accepted: string[] = [];
      for (let i = 0; i < 2; i++) {
        const answer = await post(platform, { prompt: `hello ${i}`, max_length: 5 }, limited.authorization);
        assert.equal(answer.status, 202, answer.text);
        accepted.push(answer.json.request_id);
      }
      for (let i = 0; i < 3; i++) {
        const answer = await post(platform, { prompt: "one more", max_length: 5 }, limited.authorization);
        assertError(answer, 429, "quota_exceeded", `request ${i + 3}`);
        assert.equal(answer.json.error.details?.limit, "daily_requests");
        assert.equal(answer.json.error.details?.limit_value, 2);
        const retryAfter = Number(answer.headers["retry-after"]);
        assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 86_400, `Retry-After ${answer.headers["retry-after"]}`);
      }
      assert.equal(await storedFor(platform, limited.userId), 2, "only the admitted requests are stored");
      const usage = await platform.quota.usage(limited.userId, new Date());
      assert.equal(usage.daily.requests, 2, "rejections are not counted");

      // Someone else's request is answered like a missing one, in any letter case.
      const foreign = accepted[0] as string;
      for (const id of [foreign, foreign.toUpperCase()]) {
        assertError(await inject(platform, { url: `/api/v1/status/${id}`, headers: { authorization: other.authorization } }), 404, "request_not_found");
        assertError(await inject(platform, { url: `/events/${id}`, headers: { authorization: other.authorization } }), 404, "request_not_found");
      }
      await assertNothingHeld(platform, other.userId, "foreign lookups");
    });

    it("over the daily token limit: 429 quota_exceeded naming daily_tokens; nothing reserved; a smaller request still fits", async () => {
      const limited = await platform.createUser({ dailyTokens: 300 });
      const answer = await post(platform, { prompt: "hello", max_length: 500 }, limited.authorization);
      assertError(answer, 429, "quota_exceeded");
      assert.equal(answer.json.error.details?.limit, "daily_tokens");
      assert.equal(answer.json.error.details?.limit_value, 300);
      assert.ok(answer.json.error.details?.requested_tokens > 300);
      assert.ok(Number(answer.headers["retry-after"]) >= 1);
      await assertNothingHeld(platform, limited.userId, "token limit");

      const small = await post(platform, { prompt: "hello", max_length: 10 }, limited.authorization);
      assert.equal(small.status, 202, small.text);
      const usage = await platform.quota.usage(limited.userId, new Date());
      assert.equal(usage.daily.requests, 1);
      assert.equal(usage.daily.tokensReserved, small.json.estimated_tokens);
    });

    it(
      "stop sequences that PostgreSQL jsonb cannot store (NUL, lone surrogate) are 400 invalid_parameter, not 503",
      async () => {
        const fresh = await platform.createUser();
        for (const stop of ["\u0000", ["a\u0000"], ["\ud800"], "\udfff"]) {
          const answer = await post(platform, { prompt: "hello", stop }, fresh.authorization);
          assertError(answer, 400, "invalid_parameter", `stop ${JSON.stringify(stop)}`);
        }
        await assertNothingHeld(platform, fresh.userId, "unstorable stop");
      },
    );

    it("property: no generated body gets a 5xx; 202 exactly for valid bodies; stored = counted = 202s", async () => {
      const fuzzUser = await platform.createUser();
      const gateway = platform.config.gateway;
      const limits = { maxPromptChars: gateway.maxPromptChars, models: ["default"], defaultModel: gateway.defaultModel, maxLength: gateway.maxLengthLimit };
      const weird = fc.oneof(
        fc.constant(null),
        fc.boolean(),
        fc.integer({ min: -10, max: 3000 }),
        fc.double(),
        fc.string({ maxLength: 12, unit: "binary" }),
        fc.array(fc.string({ maxLength: 6, unit: "binary" }), { maxLength: 6 }),
        fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
      );
      // Mostly good values (some just past a bound), sometimes a value of the wrong type.
      const field = <T>(good: fc.Arbitrary<T>, ...edges: unknown[]) =>
        fc.oneof({ weight: 12, arbitrary: good }, { weight: 1, arbitrary: fc.constantFrom(...edges) }, { weight: 1, arbitrary: weird });
      const optional = {
        model: field(fc.constant("default"), "other", "", "Default"),
        max_length: field(fc.integer({ min: 1, max: 500 }), 0, 501, 1.5),
        temperature: field(fc.double({ min: 0, max: 2, noNaN: true }), -0.001, 2.001),
        top_p: field(fc.double({ min: 0.001, max: 1, noNaN: true }), 0, 1.001),
        top_k: field(fc.integer({ min: 0, max: 1000 }), -1, 1001, 0.5),
        repetition_penalty: field(fc.double({ min: 0.5, max: 2, noNaN: true }), 0.499, 2.001),
        num_return_sequences: field(fc.integer({ min: 1, max: 5 }), 0, 6),
        stream: field(fc.boolean(), "true", 0),
        // Printable stop sequences here; NUL and lone surrogates have their own test above.
        stop: field(
          fc.oneof(fc.string({ minLength: 1, maxLength: 64 }), fc.array(fc.string({ minLength: 1, maxLength: 64 }), { maxLength: 4 })),
          "",
          [""],
          ["x".repeat(65)],
          ["a", "b", "c", "d", "e"],
        ),
        seed: field(fc.integer({ min: 0, max: 2 ** 31 - 1 }), -1, 2 ** 31),
      };
      const withPrompt = fc
        .tuple(
          field(fc.string({ minLength: 1, maxLength: 100, unit: "binary" }), "", "  \n", "p".repeat(101), "a\u0000b"),
          fc.record(optional, { requiredKeys: [] }),
          fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }),
        )
        .map(([prompt, rest, userId]) => ({ prompt, ...rest, ...(userId === undefined ? {} : { user_id: userId }) }));
      const known = fc.oneof(
        { weight: 3, arbitrary: withPrompt },
        { weight: 1, arbitrary: fc.record({ prompt: field(fc.string({ maxLength: 4 }), "", " "), ...optional }, { requiredKeys: [] }) },
      );
      const payload = fc.oneof(
        { weight: 4, arbitrary: known.map((b) => JSON.stringify(b)) },
        { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? "") },
        { weight: 2, arbitrary: fc.object().map((v) => JSON.stringify(v) ?? "") },
        { weight: 1, arbitrary: fc.string({ maxLength: 200, unit: "binary" }) },
        { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((s) => `{"prompt": ${s}}`) },
      );
      const contentType = fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded");

      let accepted = 0;
      const seen = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(payload, contentType, async (raw, type) => {
          // Bodies carrying a NUL or a lone surrogate into `stop` are the known jsonb bug; skip them here.
          const parsedForFilter = safeParse(raw);
          const stop = (parsedForFilter.value as { stop?: unknown } | null | undefined)?.stop;
          fc.pre(!(parsedForFilter.ok && stop !== undefined && /[\u0000\ud800-\udfff]/.test(JSON.stringify(stop) === undefined ? "" : String(stop))));

          const answer = await post(platform, raw, fuzzUser.authorization, type);
          seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
          assert.ok(answer.status < 500, `${answer.status} for ${raw.slice(0, 200)}: ${answer.text.slice(0, 300)}`);
          assertNoStack(answer.text, raw.slice(0, 100));
          const expectAccepted = wouldAccept(raw, limits);
          if (answer.status === 202) {
            accepted++;
            assert.ok(expectAccepted, `202 for a body parseInferenceBody rejects: ${raw.slice(0, 200)}`);
            assert.match(answer.json.request_id, /^[0-9a-f-]{36}$/);
          } else {
            assert.ok(answer.status >= 400, `${answer.status} for ${raw.slice(0, 200)}`);
            assert.equal(typeof answer.json?.error?.code, "string", answer.text.slice(0, 200));
            assert.equal(ERROR_STATUS[answer.json.error.code as keyof typeof ERROR_STATUS], answer.status);
            assert.ok(!expectAccepted, `${answer.status} ${answer.text.slice(0, 200)} for a valid body ${raw.slice(0, 200)}`);
          }
        }),
        { numRuns: 300 },
      );
      assert.ok(accepted > 0, `some generated bodies are valid (statuses: ${JSON.stringify([...seen])})`);
      assert.ok((seen.get(400) ?? 0) > 0, "some generated bodies are invalid");
      assert.equal(await storedFor(platform, fuzzUser.userId), accepted, "one stored request per 202, nothing half-written");
      const usage = await platform.quota.usage(fuzzUser.userId, new Date());
      assert.equal(usage.daily.requests, accepted, "one counted request per 202");
    });
  });
}

function safeParse(raw: string): { ok: boolean; value?: unknown } {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch {
    return { ok: false };
  }
}

/** What the gateway should admit: within the size limit, valid JSON, and accepted by the parser. */
function wouldAccept(raw: string, limits: Parameters<typeof parseInferenceBody>[1]): boolean {
  if (Buffer.byteLength(raw, "utf8") > BODY_LIMIT) return false;
  // The server reads the body as UTF-8, so lone surrogates in the raw text arrive as U+FFFD.
  const text = Buffer.from(raw, "utf8").toString("utf8");
  const parsed = safeParse(text);
  if (!parsed.ok) return false;
  try {
    parseInferenceBody(parsed.value, limits);
    return true;
  } catch {
    return false;
  }
}

async function dropSchema(schema: string | undefined): Promise<void> {
  if (!schema) return;
  const client = new pg.Client({ connectionString: TEST_URLS.postgres });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
}

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`broker down at admission on ${backend}`, { skip: backend === "servers" ? skipServers : undefined }, () => {
    let platform: Platform;
    let user: { userId: string; authorization: string };
    let first: Answer;
    before(async () => {
      platform = await startPlatform({ backend, anonymous: false, consumers: false, mlServiceUrl: NO_ML, env: ENV });
      user = await platform.createUser({ dailyRequests: 10 });
      first = await post(platform, { prompt: "before", max_length: 5 }, user.authorization);
      await platform.queue.close();
    });
    after(async () => platform?.stop());

    it("503 service_unavailable, reservation released, nothing stored", async () => {
      assert.equal(first.status, 202, first.text);
      for (let i = 0; i < 3; i++) {
        assertError(await post(platform, { prompt: "hello", max_length: 5 }, user.authorization), 503, "service_unavailable", `try ${i}`);
      }
      assert.equal(await storedFor(platform, user.userId), 1, "only the request admitted before the outage is stored");
      const usage = await platform.quota.usage(user.userId, new Date());
      assert.equal(usage.daily.requests, 1, "the failed admissions were given back");
      assert.equal(usage.daily.tokensReserved, first.json.estimated_tokens, "only the first request's tokens are reserved");
    });

    it(
      "the 503 carries Retry-After like every other dependency failure",
      async () => {
        const answer = await post(platform, { prompt: "hello", max_length: 5 }, user.authorization);
        assertError(answer, 503, "service_unavailable", "broker down");
        assert.ok(Number(answer.headers["retry-after"]) >= 1, `Retry-After: ${answer.headers["retry-after"]}`);
      },
    );
  });

  describe(`database down at admission on ${backend}`, { skip: backend === "servers" ? skipServers : undefined }, () => {
    let platform: Platform;
    let user: { userId: string; authorization: string };
    let schema: string | undefined;
    before(async () => {
      // Anonymous access on, so one instance serves both a caller without a key and one with a key.
      platform = await startPlatform({ backend, anonymous: true, consumers: false, mlServiceUrl: NO_ML, env: ENV });
      schema = platform.database.schema;
      user = await platform.createUser();
      // Counters are rebuilt from the database the first time a user is seen: see both users first,
      // so that reading their usage below needs no database.
      for (const id of ["anonymous", user.userId]) await platform.quota.usage(id, new Date());
      await platform.database.db.close();
    });
    after(async () => {
      await platform?.stop();
      await dropSchema(schema);
    });

    it("anonymous caller: 503 service_unavailable, reservation released", async () => {
      assertError(await post(platform, { prompt: "hello", max_length: 5 }), 503, "service_unavailable", "database down");
      const usage = await platform.quota.usage("anonymous", new Date());
      assert.equal(usage.daily.requests, 0, "the reservation was given back");
      assert.equal(usage.daily.tokensReserved, 0, "no tokens stay reserved");
    });

    it(
      "caller with an API key: 503 service_unavailable on every endpoint, not 500",
      async () => {
        assertError(await post(platform, { prompt: "hello", max_length: 5 }, user.authorization), 503, "service_unavailable", "inference");
        const usage = await platform.quota.usage(user.userId, new Date());
        assert.equal(usage.daily.requests, 0);
        assert.equal(usage.daily.tokensReserved, 0);
        assertError(await inject(platform, { url: "/api/v1/quota", headers: { authorization: user.authorization } }), 503, "service_unavailable", "quota");
        assertError(await inject(platform, { url: `/api/v1/status/${randomUUID()}`, headers: { authorization: user.authorization } }), 503, "service_unavailable", "status");
      },
    );
  });
}

/**
 * Property: whatever body a client sends to POST /inference or /v1/completions, the service never
 * answers 5xx, and every 4xx carries a stable error code whose status matches the one table.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { buildMlServiceApp } from "../../src/components/ml-service/index.js";
import { ERROR_STATUS } from "../../src/errors.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel } from "../support/model.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();

const weird = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -10, max: 10_000 }),
  fc.double({ noNaN: false }),
  fc.string({ maxLength: 20 }),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
);
const field = <T>(good: fc.Arbitrary<T>) => fc.option(fc.oneof(good, weird), { nil: undefined });

const inferenceBody = fc.record(
  {
    prompt: field(fc.string({ minLength: 0, maxLength: 40 })),
    max_length: field(fc.integer({ min: -1, max: 6 })),
    temperature: field(fc.double({ min: -0.5, max: 2.5, noNaN: true })),
    top_p: field(fc.double({ min: -0.1, max: 1.1, noNaN: true })),
    top_k: field(fc.integer({ min: -1, max: 1001 })),
    repetition_penalty: field(fc.double({ min: 0.4, max: 2.1, noNaN: true })),
    num_return_sequences: field(fc.integer({ min: 0, max: 6 })),
    stream: field(fc.boolean()),
    stop: field(fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 })),
    seed: field(fc.integer()),
    model: field(fc.constantFrom("stories260K", "default", "other")),
  },
  { requiredKeys: [] },
);

const completionBody = fc.record(
  {
    model: field(fc.constantFrom("stories260K", "x")),
    prompt: field(fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }))),
    max_tokens: field(fc.integer({ min: -1, max: 6 })),
    temperature: field(fc.double({ min: -0.5, max: 2.5, noNaN: true })),
    n: field(fc.integer({ min: 0, max: 3 })),
    stream: field(fc.boolean()),
    stop: field(fc.oneof(fc.string({ maxLength: 3 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 5 }))),
    logprobs: field(fc.integer({ min: 0, max: 2 })),
    echo: field(fc.boolean()),
  },
  { requiredKeys: [] },
);

describe("ml-service fuzzing", { skip }, () => {
  let app: FastifyInstance;
  before(async () => {
    const built = await buildMlServiceApp(storiesConfig({ contextSize: 128, maxTokensLimit: 5 }), { logger: silentLogger });
    app = built.app;
    await built.ready;
  });
  after(async () => app?.close());

  const check = async (url: string, payload: unknown, raw = false) => {
    const res = raw
      ? await app.inject({ method: "POST", url, headers: { "content-type": "application/json" }, payload: payload as string })
      : await app.inject({ method: "POST", url, payload: payload as Record<string, unknown> });
    assert.ok(res.statusCode < 500, `${url} ${JSON.stringify(payload)} → ${res.statusCode} ${res.body}`);
    if (res.statusCode >= 400) {
      const code = (res.json() as { error: { code: keyof typeof ERROR_STATUS } }).error.code;
      assert.ok(code in ERROR_STATUS, `unknown code ${code}`);
      assert.equal(ERROR_STATUS[code], res.statusCode, `status of ${code}`);
    }
  };

  test("POST /inference: no 5xx, stable 4xx codes", async () => {
    await fc.assert(fc.asyncProperty(inferenceBody, (body) => check("/inference", body)), { numRuns: 150 });
  });

  test("POST /v1/completions: no 5xx, stable 4xx codes", async () => {
    await fc.assert(fc.asyncProperty(completionBody, (body) => check("/v1/completions", body)), { numRuns: 150 });
  });

  test("arbitrary JSON and non-JSON text: no 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.json(), fc.string({ maxLength: 30 })), async (text) => {
        await check("/inference", text, true);
        await check("/v1/chat/completions", text, true);
      }),
      { numRuns: 100 },
    );
  });
});

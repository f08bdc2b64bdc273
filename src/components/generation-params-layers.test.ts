/**
 * The same generation parameters sent through every layer that reads them: the gateway's body,
 * the queue message, the ML Service's `/inference` body and its two OpenAI bodies. One table of
 * values on each side of every bound; every layer must accept and reject alike, name the same
 * field, and read the same value. Accepted values then travel the real path (gateway → message →
 * worker's request body → ML Service) and arrive unchanged under either ML_SERVICE_API.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../errors.js";
import { encodeMessage, parseRequestMessage, requestMessageSchema, requestMessageSchemaFor } from "../domain/contracts.js";
import { GENERATION_DEFAULTS, MAX_LENGTH_CEILING, MAX_SEED, toWire, type GenerationParams } from "../domain/generation-params.js";
import { parseInferenceBody } from "../domain/inference-request.js";
import { requestMessageOf } from "../domain/request-message.js";
import { loadConfig } from "../config.js";
import { chatBodySchema, completionBodySchema, inferenceBodySchema, openAiParams, parseBody } from "./ml-service/schemas.js";
import { nativeRequest, openAiRequest } from "./worker/ml-client.js";

/** One limit for every layer, as a deployment would set MAX_LENGTH_LIMIT and ML_MAX_TOKENS_LIMIT alike. */
const LIMIT = 500;
const PROMPT = "Once upon a time";

type Field = "max_length" | "temperature" | "top_p" | "top_k" | "repetition_penalty" | "num_return_sequences" | "stop" | "seed";
const OPENAI_NAME: Record<Field, string> = {
  max_length: "max_tokens",
  temperature: "temperature",
  top_p: "top_p",
  top_k: "top_k",
  repetition_penalty: "repetition_penalty",
  num_return_sequences: "n",
  stop: "stop",
  seed: "seed",
};
const CAMEL: Record<Field, keyof GenerationParams> = {
  max_length: "maxLength",
  temperature: "temperature",
  top_p: "topP",
  top_k: "topK",
  repetition_penalty: "repetitionPenalty",
  num_return_sequences: "numReturnSequences",
  stop: "stop",
  seed: "seed",
};

/** [field, value, accepted]: each bound with the value on it and the nearest value past it. */
const TABLE: Array<[Field, unknown, boolean]> = [
  ["max_length", 1, true],
  ["max_length", 0, false],
  ["max_length", LIMIT, true],
  ["max_length", LIMIT + 1, false],
  ["max_length", -1, false],
  ["max_length", 1.5, false],
  ["max_length", "100", false],
  ["max_length", true, false],
  ["max_length", [], false],
  ["max_length", {}, false],
  ["temperature", 0, true],
  ["temperature", -0.01, false],
  ["temperature", 2, true],
  ["temperature", 2.01, false],
  ["temperature", 0.35, true],
  ["temperature", "0.7", false],
  ["top_p", 0, false],
  ["top_p", 1e-9, true],
  ["top_p", 1, true],
  ["top_p", 1.0001, false],
  ["top_p", "0.9", false],
  ["top_k", 0, true],
  ["top_k", -1, false],
  ["top_k", 1000, true],
  ["top_k", 1001, false],
  ["top_k", 2.5, false],
  ["repetition_penalty", 0.5, true],
  ["repetition_penalty", 0.49, false],
  ["repetition_penalty", 2, true],
  ["repetition_penalty", 2.01, false],
  ["repetition_penalty", [1.2], false],
  ["num_return_sequences", 1, true],
  ["num_return_sequences", 0, false],
  ["num_return_sequences", 5, true],
  ["num_return_sequences", 6, false],
  ["num_return_sequences", 1.5, false],
  ["seed", 0, true],
  ["seed", -1, false],
  ["seed", MAX_SEED, true],
  ["seed", MAX_SEED + 1, false],
  ["seed", 1.5, false],
  ["seed", "42", false],
  ["stop", "\n", true],
  ["stop", [], true],
  ["stop", ["a", "b", "c", "d"], true],
  ["stop", ["a", "b", "c", "d", "e"], false],
  ["stop", ["x".repeat(64)], true],
  ["stop", ["x".repeat(65)], false],
  ["stop", "", false],
  ["stop", [""], false],
  ["stop", [1], false],
  ["stop", 5, false],
  ["stop", {}, false],
  ["stop", "a\u0000b", false],
  ["stop", ["\ud800"], false],
];

/** What a layer made of the value: the parameters it read, or the field its error names. */
type Verdict = { ok: true; params: GenerationParams } | { ok: false; field: string };

function verdict(read: () => GenerationParams): Verdict {
  try {
    return { ok: true, params: read() };
  } catch (error) {
    assert.ok(error instanceof AppError, String(error));
    assert.equal(error.code, "invalid_parameter", error.message);
    return { ok: false, field: String(error.details?.field) };
  }
}

const gatewayLimits = { maxPromptChars: 1000, models: ["default"], defaultModel: "default", maxLength: LIMIT };
const wireSchema = requestMessageSchemaFor({ maxLength: LIMIT });
const inference = inferenceBodySchema(LIMIT);
const completion = completionBodySchema(LIMIT);
const chat = chatBodySchema(LIMIT);
const chatMessages = [{ role: "user", content: PROMPT }];

/** Every layer, each reading `value` for `field`; the name is what a failure message shows. */
const LAYERS: Array<[string, (field: Field, value: unknown) => Verdict]> = [
  ["gateway body", (field, value) => verdict(() => parseInferenceBody({ prompt: PROMPT, [field]: value }, gatewayLimits).params)],
  [
    "queue message",
    (field, value) => {
      const message = { ...requestMessageOf(sampleRequest(GENERATION_DEFAULTS)), params: { ...toWire(GENERATION_DEFAULTS), [field]: value } };
      const parsed = wireSchema.safeParse(message);
      if (parsed.success) return { ok: true, params: fromMessage(parsed.data.params) };
      const issue = parsed.error.issues[0];
      assert.equal(issue?.path[0], "params", JSON.stringify(parsed.error.issues));
      return { ok: false, field: String(issue?.path[1]) };
    },
  ],
  ["ML Service /inference", (field, value) => verdict(() => parseBody(inference, { prompt: PROMPT, [field]: value }).params)],
  [
    "ML Service /v1/completions",
    (field, value) => verdict(() => openAiParams(parseBody(completion, { prompt: PROMPT, [OPENAI_NAME[field]]: value }), 16)),
  ],
  [
    "ML Service /v1/chat/completions",
    (field, value) => verdict(() => openAiParams(parseBody(chat, { messages: chatMessages, [OPENAI_NAME[field]]: value }), LIMIT)),
  ],
];

function sampleRequest(params: GenerationParams) {
  return {
    requestId: "7f1f3c1e-5a57-4c1b-9d7e-6b0a4c1f2e3d",
    userId: "alice",
    model: "default",
    prompt: PROMPT,
    params,
    estimatedTokens: 123,
    createdAt: new Date("2026-01-02T03:04:05.000Z"),
  };
}

const fromMessage = (wire: unknown) => parseBody(inference, { prompt: PROMPT, ...(wire as object) }).params;

describe("generation parameters: every layer accepts and rejects alike", () => {
  for (const [field, value, accepted] of TABLE) {
    it(`${field} = ${JSON.stringify(value)?.slice(0, 30)} is ${accepted ? "accepted" : "rejected"} everywhere`, () => {
      for (const [layer, read] of LAYERS) {
        const seen = read(field, value);
        const openAi = layer.includes("/v1/");
        assert.equal(seen.ok, accepted, `${layer}: ${JSON.stringify(seen)}`);
        if (!seen.ok) {
          assert.equal(seen.field, openAi ? OPENAI_NAME[field] : field, `${layer} names the field`);
          continue;
        }
        const expected = field === "stop" && typeof value === "string" ? [value] : value;
        assert.deepEqual(seen.params[CAMEL[field]], expected, `${layer} reads the value as sent`);
      }
    });
  }

  it("the max_length bound is the limit each layer is given, and the queue message's is the ceiling of that setting", () => {
    assert.equal(verdict(() => parseInferenceBody({ prompt: "x", max_length: 501 }, { ...gatewayLimits, maxLength: 501 }).params).ok, true);
    assert.equal(verdict(() => parseBody(inferenceBodySchema(501), { prompt: "x", max_length: 501 }).params).ok, true);
    const message = (maxLength: number) => requestMessageOf(sampleRequest({ ...GENERATION_DEFAULTS, maxLength }));
    assert.equal(requestMessageSchema.safeParse(message(MAX_LENGTH_CEILING)).success, true);
    assert.equal(requestMessageSchema.safeParse(message(MAX_LENGTH_CEILING + 1)).success, false);
    assert.equal(loadConfig({ MAX_LENGTH_LIMIT: String(MAX_LENGTH_CEILING) }).gateway.maxLengthLimit, MAX_LENGTH_CEILING);
    assert.throws(() => loadConfig({ MAX_LENGTH_LIMIT: String(MAX_LENGTH_CEILING + 1) }), /MAX_LENGTH_LIMIT/);
    assert.throws(() => loadConfig({ ML_MAX_TOKENS_LIMIT: String(MAX_LENGTH_CEILING + 1) }), /ML_MAX_TOKENS_LIMIT/);
    assert.equal(loadConfig({}).gateway.maxLengthLimit, 500);
  });

  it("null: the first-version bodies and the message refuse it; OpenAI bodies read it as not given, as OpenAI clients mean it", () => {
    for (const field of Object.keys(OPENAI_NAME) as Field[]) {
      for (const [layer, read] of LAYERS) {
        const seen = read(field, null);
        assert.equal(seen.ok, layer.includes("/v1/"), `${layer} ${field}: null → ${JSON.stringify(seen)}`);
      }
    }
  });
});

describe("generation parameters travel unchanged: gateway → queue message → worker → ML Service", () => {
  const bodies: Array<Record<string, unknown>> = [
    {},
    { max_length: LIMIT, temperature: 0, top_p: 1e-9, top_k: 0, repetition_penalty: 0.5, num_return_sequences: 5, seed: 0, stop: "\n" },
    { max_length: 1, temperature: 2, top_p: 1, top_k: 1000, repetition_penalty: 2, num_return_sequences: 1, seed: MAX_SEED, stop: ["a", "b", "c", "d"] },
    { top_k: 7, repetition_penalty: 1.05 },
  ];
  for (const body of bodies) {
    it(`${JSON.stringify(body)}`, () => {
      const admitted = parseInferenceBody({ prompt: PROMPT, ...body }, gatewayLimits).params;
      const raw = encodeMessage(requestMessageOf(sampleRequest(admitted)));
      const read = parseRequestMessage(raw);
      assert.ok(read.ok, read.ok ? "" : read.error);
      const message = read.value;
      assert.deepEqual(JSON.parse(raw.toString()).params, toWire(admitted), "the message carries the snake_case wire form");

      const native = nativeRequest("http://ml", message);
      assert.equal(native.url.pathname, "/inference");
      assert.deepEqual(parseBody(inference, native.body).params, admitted, "native: the ML Service reads what the gateway admitted");

      const openAi = openAiRequest("http://ml", message);
      assert.equal(openAi.url.pathname, "/v1/completions");
      const served = openAiParams(parseBody(completion, openAi.body), 16);
      assert.deepEqual(served, admitted, "openai: nothing dropped (top_k and repetition_penalty included)");
    });
  }
});

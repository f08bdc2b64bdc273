import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AppError, ERRORS } from "../../../errors.js";
import { parseChatBody, parseCompletionBody } from "./bodies.js";

const LIMITS = { maxLength: 500, maxPromptChars: 200, models: ["default", "stories"], defaultModel: "stories" };

function refusedWith(work: () => unknown, code: string, param?: string) {
  assert.throws(work, (error: unknown) => {
    assert.ok(error instanceof AppError, String(error));
    assert.equal(error.code, code, error.message);
    if (param !== undefined) assert.equal(error.details?.field, param, error.message);
    return true;
  });
}

describe("OpenAI bodies at the gateway", () => {
  it("a chat body takes OpenAI's names and defaults, the extensions, and developer as system", () => {
    const parsed = parseChatBody(
      {
        model: "default",
        messages: [
          { role: "developer", content: "Be brief." },
          { role: "user", content: [{ type: "text", text: "Hi " }, { type: "text", text: "there" }] },
        ],
        max_completion_tokens: 12,
        top_k: 40,
        repetition_penalty: 1.1,
        stop: "\n",
        seed: 9,
        stream: true,
        stream_options: { include_usage: true },
        presence_penalty: 0,
        user: "someone",
      },
      LIMITS,
    );
    assert.equal(parsed.model, "stories");
    assert.deepEqual(parsed.messages, [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi there" },
    ]);
    assert.deepEqual(parsed.params, { maxLength: 12, temperature: 1, topP: 1, topK: 40, repetitionPenalty: 1.1, numReturnSequences: 1, stop: ["\n"], seed: 9 });
    assert.equal(parsed.stream, true);
    assert.equal(parsed.includeUsage, true);
  });

  it("a completion body defaults to OpenAI's 16 tokens; nulls mean not given", () => {
    const parsed = parseCompletionBody({ model: "stories", prompt: "Once", temperature: null, max_tokens: null }, LIMITS);
    assert.equal(parsed.params.maxLength, 16);
    assert.equal(parsed.params.temperature, 1);
    assert.equal(parsed.prompt, "Once");
    assert.equal(parsed.messages, undefined);
  });

  it("refusals name the field as OpenAI's param", () => {
    const chat = (extra: Record<string, unknown>) => () => parseChatBody({ model: "stories", messages: [{ role: "user", content: "x" }], ...extra }, LIMITS);
    refusedWith(chat({ temperature: 3 }), "invalid_parameter", "temperature");
    refusedWith(chat({ max_tokens: 501 }), "invalid_parameter", "max_tokens");
    refusedWith(chat({ n: 2, stream: true }), "invalid_parameter", "n");
    refusedWith(chat({ tools: [] }), "unknown_field", "tools");
    refusedWith(chat({ presence_penalty: 0.5 }), "invalid_parameter", "presence_penalty");
    refusedWith(chat({ logit_bias: { "1": 2 } }), "invalid_parameter", "logit_bias");
    refusedWith(chat({ model: "gpt-4o" }), "model_not_found", "model");
    refusedWith(() => parseChatBody({ model: "stories", messages: [] }, LIMITS), "invalid_parameter", "messages");
    refusedWith(() => parseChatBody({ model: "stories" }, LIMITS), "missing_prompt", "messages");
    refusedWith(() => parseChatBody({ model: "stories", messages: [{ role: "tool", content: "x" }] }, LIMITS), "invalid_parameter", "messages.0.role");
    refusedWith(() => parseChatBody({ model: "stories", messages: [{ role: "user", content: "x".repeat(201) }] }, LIMITS), "prompt_too_long", "messages");
    refusedWith(() => parseCompletionBody({ model: "stories", prompt: ["a", "b"] }, LIMITS), "invalid_parameter", "prompt");
    refusedWith(() => parseCompletionBody({ model: "stories" }, LIMITS), "missing_prompt", "prompt");
    refusedWith(() => parseCompletionBody({ model: "stories", prompt: "a\u0000b" }, LIMITS), "invalid_parameter", "prompt");
    refusedWith(() => parseCompletionBody([], LIMITS), "invalid_body");
  });

  it("property: any JSON value is parsed or refused with a 4xx code of the table, never anything else", () => {
    const value = fc.jsonValue({ maxDepth: 3 });
    const message = fc.record({ role: fc.oneof(fc.constantFrom("user", "system", "assistant", "developer"), value), content: fc.oneof(fc.string({ maxLength: 40 }), value) }, { requiredKeys: [] });
    const chatBody = fc.record(
      {
        model: fc.oneof(fc.constantFrom("stories", "default"), value),
        messages: fc.oneof(fc.array(message, { maxLength: 3 }), value),
        max_tokens: fc.oneof(fc.integer({ min: -2, max: 600 }), value),
        temperature: fc.oneof(fc.double({ noNaN: true, min: -1, max: 3 }), value),
        n: fc.oneof(fc.integer({ min: 0, max: 6 }), value),
        stream: fc.oneof(fc.boolean(), value),
        stop: fc.oneof(fc.string({ maxLength: 70 }), value),
        extra: value,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(chatBody, value), (body) => {
        for (const parse of [parseChatBody, parseCompletionBody]) {
          try {
            const parsed = parse(body, LIMITS);
            assert.ok(parsed.params.maxLength >= 1 && parsed.params.maxLength <= LIMITS.maxLength);
            assert.ok(parsed.prompt.length <= LIMITS.maxPromptChars);
          } catch (error) {
            assert.ok(error instanceof AppError, `not an AppError: ${String(error)}`);
            const status = ERRORS[error.code].status;
            assert.ok(status >= 400 && status < 500, `${error.code} is ${status}`);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});

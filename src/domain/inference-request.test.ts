import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { estimateTokens, parseInferenceBody } from "./inference-request.js";
import { AppError } from "../errors.js";

const limits = { maxPromptChars: 100, models: ["m1", "m2"], defaultModel: "m1", maxLength: 500 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof AppError, `expected AppError, got ${String(error)}`);
    return error.code;
  }
}

describe("parseInferenceBody", () => {
  it("applies the first version's defaults", () => {
    const parsed = parseInferenceBody({ prompt: "test prompt" }, limits);
    assert.deepEqual(parsed, {
      prompt: "test prompt",
      model: "m1",
      stream: false,
      params: { maxLength: 100, temperature: 0.7, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
    });
  });

  it("names the problem with a stable code", () => {
    assert.equal(codeOf(() => parseInferenceBody([], limits)), "invalid_body");
    assert.equal(codeOf(() => parseInferenceBody("x", limits)), "invalid_body");
    assert.equal(codeOf(() => parseInferenceBody({}, limits)), "missing_prompt");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "  " }, limits)), "missing_prompt");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: 5 }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "x".repeat(101) }, limits)), "prompt_too_long");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", user_id: "bob" }, limits)), "unknown_field");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", max_length: 0 }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", max_length: 1.5 }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", temperature: "hot" }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", top_p: 0 }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", top_k: 1001 }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", num_return_sequences: 6 }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", stream: "yes" }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", stop: [""] }, limits)), "invalid_parameter");
    assert.equal(codeOf(() => parseInferenceBody({ prompt: "a", model: "gpt-9" }, limits)), "model_not_found");
    const error = (() => {
      try {
        parseInferenceBody({ prompt: "a", temperature: 3 }, limits);
      } catch (e) {
        return e as AppError;
      }
    })();
    assert.match(error?.message ?? "", /temperature/);
    assert.equal(error?.status, 400);
  });

  it("accepts every value inside the ranges (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          prompt: fc.string({ minLength: 1, maxLength: 100 }).filter((s) => s.trim().length > 0 && !s.includes("\u0000")),
          max_length: fc.integer({ min: 1, max: 500 }),
          temperature: fc.double({ min: 0, max: 2, noNaN: true }),
          top_k: fc.integer({ min: 0, max: 1000 }),
          num_return_sequences: fc.integer({ min: 1, max: 5 }),
        }),
        (body) => {
          const parsed = parseInferenceBody(body, limits);
          assert.equal(parsed.params.maxLength, body.max_length);
          assert.ok(estimateTokens(parsed.prompt, parsed.params) >= body.max_length * body.num_return_sequences);
        },
      ),
    );
  });

  it("never throws anything but AppError on arbitrary JSON (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseInferenceBody(value, limits);
        } catch (error) {
          assert.ok(error instanceof AppError);
          assert.ok(error.status >= 400 && error.status < 500);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("estimateTokens", () => {
  it("bounds prompt tokens by UTF-8 bytes and adds the requested completion", () => {
    assert.equal(estimateTokens("abcd", { maxLength: 10, numReturnSequences: 1 }), 4 + 2 + 10);
    assert.equal(estimateTokens("é", { maxLength: 10, numReturnSequences: 2 }), (2 + 2) * 2 + 20);
  });
});

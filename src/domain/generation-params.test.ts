import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bodyParamsSchema,
  fromOpenAi,
  fromWire,
  GENERATION_DEFAULTS,
  MAX_SEED,
  toWire,
  wireParamsSchema,
  wireToOpenAi,
  type GenerationParams,
} from "./generation-params.js";

const limits = { maxLength: 500 };

const params: fc.Arbitrary<GenerationParams> = fc.record(
  {
    maxLength: fc.integer({ min: 1, max: 500 }),
    temperature: fc.double({ min: 0, max: 2, noNaN: true }),
    topP: fc.double({ min: Number.MIN_VALUE, max: 1, noNaN: true }),
    topK: fc.integer({ min: 0, max: 1000 }),
    repetitionPenalty: fc.double({ min: 0.5, max: 2, noNaN: true }),
    numReturnSequences: fc.integer({ min: 1, max: 5 }),
    stop: fc.array(fc.string({ minLength: 1, maxLength: 64, unit: "grapheme-ascii" }), { maxLength: 4 }),
    seed: fc.integer({ min: 0, max: MAX_SEED }),
  },
  { requiredKeys: ["maxLength", "temperature", "topP", "topK", "repetitionPenalty", "numReturnSequences"] },
);

const firstIssue = (result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) => {
  const issue = result.error?.issues[0];
  return issue ? `${issue.path.map(String).join(".")}: ${issue.message}` : "ok";
};

describe("generation parameters", () => {
  it("a body that names nothing gets the first version's defaults", () => {
    const parsed = bodyParamsSchema(limits).parse({});
    assert.deepEqual(fromWire(parsed), GENERATION_DEFAULTS);
    assert.deepEqual(GENERATION_DEFAULTS, { maxLength: 100, temperature: 0.7, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 });
  });

  it("the wire form has no defaults: every number must be there", () => {
    assert.equal(wireParamsSchema(limits).safeParse(toWire(GENERATION_DEFAULTS)).success, true);
    const { top_k: _dropped, ...missing } = toWire(GENERATION_DEFAULTS);
    assert.equal(firstIssue(wireParamsSchema(limits).safeParse(missing)), "top_k: must be a number, got undefined");
    assert.match(firstIssue(wireParamsSchema(limits).safeParse({ ...toWire(GENERATION_DEFAULTS), extra: 1 })), /extra|Unrecognized/);
  });

  it("messages name the range, the kind and the value", () => {
    const parse = (body: Record<string, unknown>) => firstIssue(bodyParamsSchema(limits).safeParse(body));
    assert.equal(parse({ max_length: 501 }), "max_length: must be in [1, 500], got 501");
    assert.equal(parse({ top_p: 0 }), "top_p: must be in (0, 1], got 0");
    assert.equal(parse({ top_k: 2.5 }), "top_k: must be an integer, got 2.5");
    assert.equal(parse({ temperature: "hot" }), "temperature: must be a number, got a string");
    assert.equal(parse({ seed: null }), "seed: must be a number, got null");
    assert.equal(parse({ max_length: Number.POSITIVE_INFINITY }), "max_length: must be a number, got Infinity");
    assert.equal(parse({ stop: ["a", "b", "c", "d", "e"] }), "stop: at most 4 sequences");
    assert.equal(parse({ stop: [""] }), "stop: must be a string or an array of non-empty strings of at most 64 characters");
    assert.equal(parse({ stop: "\u0000" }), "stop: must be well-formed Unicode without NUL characters");
  });

  it("the max_length bound is the limit passed in", () => {
    assert.equal(bodyParamsSchema({ maxLength: 8 }).safeParse({ max_length: 8 }).success, true);
    assert.equal(bodyParamsSchema({ maxLength: 8 }).safeParse({ max_length: 9 }).success, false);
    assert.equal(bodyParamsSchema({ maxLength: 9 }).safeParse({ max_length: 9 }).success, true);
  });

  it("toWire and fromWire are inverse, and the wire form passes the wire schema (property)", () => {
    fc.assert(
      fc.property(params, (generated) => {
        const p = { ...generated }; // fast-check's records have a null prototype
        const wire = toWire(p);
        assert.deepEqual(fromWire(wire), p);
        assert.deepEqual(fromWire(wireParamsSchema(limits).parse(JSON.parse(JSON.stringify(wire)))), p);
        assert.deepEqual(fromWire(bodyParamsSchema(limits).parse(wire)), p);
      }),
    );
  });

  it("OpenAI names map onto the same parameters, nothing dropped (property)", () => {
    fc.assert(
      fc.property(params, (generated) => {
        const p = { ...generated };
        const openAi = wireToOpenAi(toWire(p));
        assert.equal(openAi.max_tokens, p.maxLength);
        assert.equal(openAi.n, p.numReturnSequences);
        assert.deepEqual(fromOpenAi(openAi, { ...GENERATION_DEFAULTS, temperature: 1 }), p);
      }),
    );
  });

  it("OpenAI bodies: null and absent fields take the protocol's defaults", () => {
    const defaults = { maxLength: 16, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, numReturnSequences: 1 };
    assert.deepEqual(fromOpenAi({ max_tokens: null, stop: null, seed: null }, defaults), defaults);
    assert.deepEqual(fromOpenAi({ seed: 0, stop: ["x"] }, defaults), { ...defaults, seed: 0, stop: ["x"] });
  });
});

/**
 * The `POST /v1/responses` body: the calls OpenAI's SDK typically makes (typed as its own params, so
 * they are real SDK calls) parse; bad ones are refused with the field named, as OpenAI's `param`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ResponseCreateParams } from "openai/resources/responses/responses";
import { AppError } from "../../../errors.js";
import { parseResponsesBody, responsesRequest } from "./responses-body.js";

const limits = { maxLength: 512 };
const parse = (body: unknown) => parseResponsesBody(body, limits);

/** The AppError a body is refused with: its code, field and message. */
function refusal(body: unknown): { code: string; field: unknown; message: string } {
  try {
    parse(body);
  } catch (error) {
    assert.ok(error instanceof AppError, String(error));
    return { code: error.code, field: error.details?.field, message: error.message };
  }
  assert.fail(`accepted ${JSON.stringify(body)}`);
}

describe("accepted: the SDK's typical calls", () => {
  const calls: ResponseCreateParams[] = [
    { model: "demo", input: "Tell me a joke" },
    { model: "demo", input: "hi", stream: true, store: true, background: false },
    { model: "demo", instructions: "Be brief.", input: [{ role: "user", content: "hi" }], max_output_tokens: 64, temperature: 0.2, top_p: 0.9 },
    {
      model: "demo",
      input: [
        { type: "message", role: "developer", content: [{ type: "input_text", text: "Talk like a pirate." }] },
        { role: "user", content: [{ type: "input_text", text: "Are semicolons " }, { type: "input_text", text: "optional?" }] },
      ],
      metadata: { app: "cli", trace: "x".repeat(512) },
      user: "u-1",
      background: true,
    },
    // A second turn that passes back the first response's output item, as the docs show.
    {
      model: "demo",
      input: [
        { role: "user", content: "hi" },
        { id: "msg_1", type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "Hello!", annotations: [] }] },
        { role: "user", content: "again" },
      ],
    },
    // Python's and other clients' null for "not given".
    { model: "demo", input: "x", instructions: null, max_output_tokens: null, temperature: null, top_p: null, metadata: null, store: null },
  ];
  for (const call of calls) {
    it(JSON.stringify(call).slice(0, 90), () => {
      assert.doesNotThrow(() => parse(call));
    });
  }

  it("becomes chat turns: instructions first, developer as system, parts joined; only given params", () => {
    assert.deepEqual(responsesRequest(parse(calls[3])), {
      messages: [
        { role: "system", content: "Talk like a pirate." },
        { role: "user", content: "Are semicolons optional?" },
      ],
      params: {},
    });
    assert.deepEqual(responsesRequest(parse(calls[2])), {
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "hi" },
      ],
      params: { maxLength: 64, temperature: 0.2, topP: 0.9 },
    });
    assert.deepEqual(responsesRequest(parse(calls[0])).messages, [{ role: "user", content: "Tell me a joke" }]);
    assert.deepEqual(responsesRequest(parse(calls[5])), { messages: [{ role: "user", content: "x" }], params: {} });
    assert.deepEqual(
      responsesRequest(parse(calls[4])).messages.map((m) => m.role),
      ["user", "assistant", "user"],
    );
  });
});

describe("refused, with the field named", () => {
  const base = { model: "demo", input: "hi" };
  const cases: Array<[string, unknown, string, string, RegExp]> = [
    ["tools", { ...base, tools: [{ type: "web_search" }] }, "unknown_field", "tools", /"tools" is not supported here; the fields taken are model, input/],
    ["reasoning", { ...base, reasoning: { effort: "low" } }, "unknown_field", "reasoning", /not supported/],
    ["previous_response_id", { ...base, previous_response_id: "resp_1" }, "unknown_field", "previous_response_id", /not supported/],
    ["store false", { ...base, store: false }, "invalid_parameter", "store", /store: false is not supported: every response is stored/],
    ["temperature", { ...base, temperature: 3 }, "invalid_parameter", "temperature", /must be in \[0, 2\], got 3/],
    ["top_p", { ...base, top_p: 0 }, "invalid_parameter", "top_p", /must be in \(0, 1\], got 0/],
    ["max_output_tokens 0", { ...base, max_output_tokens: 0 }, "invalid_parameter", "max_output_tokens", /must be in \[1, 512\]/],
    ["max_output_tokens over the limit", { ...base, max_output_tokens: 513 }, "invalid_parameter", "max_output_tokens", /got 513/],
    ["max_output_tokens not an integer", { ...base, max_output_tokens: 1.5 }, "invalid_parameter", "max_output_tokens", /integer/],
    ["17 metadata keys", { ...base, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, "invalid_parameter", "metadata", /at most 16 keys/],
    ["a long metadata key", { ...base, metadata: { ["k".repeat(65)]: "v" } }, "invalid_parameter", "metadata", /keys must be at most 64/],
    ["a long metadata value", { ...base, metadata: { k: "v".repeat(513) } }, "invalid_parameter", "metadata.k", /values must be at most 512/],
    ["a metadata number", { ...base, metadata: { k: 1 } }, "invalid_parameter", "metadata.k", /must be a string, got 1/],
    ["no input", { model: "demo" }, "missing_prompt", "input", /input is required/],
    ["empty input", { ...base, input: "" }, "invalid_parameter", "input", /must not be empty/],
    ["no messages", { ...base, input: [] }, "invalid_parameter", "input", /must not be empty/],
    ["input a number", { ...base, input: 3 }, "invalid_parameter", "input", /must be string or array/],
    ["an image part", { ...base, input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] }, "invalid_parameter", "input[0].content[0].type", /only input_text/],
    ["a tool role", { ...base, input: [{ role: "tool", content: "x" }] }, "invalid_parameter", "input[0].role", /expected one of/],
    ["a function call item", { ...base, input: [{ role: "user", content: "x" }, { type: "function_call_output", call_id: "c", output: "o" }] }, "invalid_parameter", "input[1].type", /only message items are supported/],
    ["an unknown item field", { ...base, input: [{ role: "user", content: "x", name: "bob" }] }, "invalid_parameter", "input[0].name", /unknown field "name"/],
    ["a part with no text", { ...base, input: [{ role: "user", content: [{ type: "input_text" }] }] }, "invalid_parameter", "input[0].content[0].text", /must be a string/],
    ["a NUL", { ...base, input: "a\u0000b" }, "invalid_parameter", "input", /without NUL/],
    ["stream a string", { ...base, stream: "yes" }, "invalid_parameter", "stream", /expected boolean/],
    ["not an object", [base], "invalid_body", "", /must be a JSON object, got an array/],
  ];
  for (const [name, body, code, field, message] of cases) {
    it(name, () => {
      const r = refusal(body);
      assert.equal(r.code, code, r.message);
      assert.equal(r.field ?? "", field, r.message);
      assert.match(r.message, message);
    });
  }
});

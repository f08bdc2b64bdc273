import { test } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../../errors.js";
import { chatBodySchema, chatMessages, completionBodySchema, inferenceBodySchema, openAiParams, openAiPenalties, parseBody } from "./schemas.js";

const inference = inferenceBodySchema(4096);
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof AppError);
    return e.code;
  }
  return "ok";
};

test("/inference defaults are the first version's", () => {
  const b = parseBody(inference, { prompt: "hi", user_id: "ignored" });
  assert.deepEqual(b, {
    prompt: "hi",
    model: undefined,
    stream: false,
    params: { maxLength: 100, temperature: 0.7, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
  });
});

test("/inference rejections carry stable codes", () => {
  assert.equal(code(() => parseBody(inference, {})), "missing_prompt");
  assert.equal(code(() => parseBody(inference, { prompt: 3 })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, { prompt: "" })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, null)), "invalid_body");
  assert.equal(code(() => parseBody(inference, [1])), "invalid_body");
  assert.equal(code(() => parseBody(inference, { prompt: "a", max_length: 0 })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, { prompt: "a", max_length: 4097 })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, { prompt: "a", temperature: 2.1 })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, { prompt: "a", top_p: 0 })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, { prompt: "a", num_return_sequences: 6 })), "invalid_parameter");
  assert.equal(code(() => parseBody(inference, { prompt: "a", temperature: 0 })), "ok");
  assert.equal(code(() => parseBody(inference, { prompt: "a", stop: "x", seed: 7 })), "ok");
});

test("the bad field is named in the message", () => {
  try {
    parseBody(inference, { prompt: "a", top_k: 5000 });
    assert.fail();
  } catch (e) {
    assert.ok(e instanceof AppError);
    assert.match(e.message, /^top_k:/);
  }
});

test("OpenAI completion defaults and extensions", () => {
  const b = parseBody(completionBodySchema(100), { model: "m", prompt: "hi", stop: "\n", top_k: 40 });
  assert.deepEqual(openAiParams(b, 16), { maxLength: 16, temperature: 1, topP: 1, topK: 40, repetitionPenalty: 1, numReturnSequences: 1, stop: ["\n"] });
  assert.deepEqual(openAiPenalties(b), {});
  assert.deepEqual(openAiPenalties(parseBody(completionBodySchema(100), { prompt: "hi", presence_penalty: 0.5, frequency_penalty: 0 })), { presencePenalty: 0.5 });
  assert.equal(code(() => parseBody(completionBodySchema(100), { prompt: "hi", logprobs: 3 })), "invalid_parameter");
  assert.equal(code(() => parseBody(completionBodySchema(100), { prompt: "hi", max_tokens: 101 })), "invalid_parameter");
});

test("chat messages: developer becomes system, text parts are joined", () => {
  const b = parseBody(chatBodySchema(100), {
    model: "m",
    messages: [
      { role: "developer", content: "be brief" },
      { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
    ],
    max_completion_tokens: 5,
  });
  assert.deepEqual(chatMessages(b), [
    { role: "system", content: "be brief" },
    { role: "user", content: "ab" },
  ]);
  assert.equal(openAiParams(b, 100).maxLength, 5);
  assert.equal(code(() => parseBody(chatBodySchema(100), { messages: [] })), "invalid_parameter");
  assert.equal(code(() => parseBody(chatBodySchema(100), {})), "missing_prompt");
});

test("/inference takes prompt or messages, exactly one", () => {
  const messages = [
    { role: "system", content: "be brief" },
    { role: "user", content: "hi" },
  ];
  const b = parseBody(inference, { messages, temperature: 0 });
  assert.deepEqual("messages" in b ? b.messages : undefined, messages);
  assert.ok(!("prompt" in b), "only the input sent");
  assert.ok(!("messages" in parseBody(inference, { prompt: "hi" })));
  const field = (body: unknown) => {
    try {
      parseBody(inference, body);
    } catch (e) {
      assert.ok(e instanceof AppError);
      return `${e.code} ${String(e.details?.field)}`;
    }
    return "ok";
  };
  assert.equal(field({ prompt: "hi", messages }), "invalid_parameter messages");
  assert.equal(field({ temperature: 0 }), "missing_prompt prompt");
  assert.equal(field({ messages: [] }), "invalid_parameter messages");
  assert.equal(field({ messages: Array.from({ length: 257 }, () => ({ role: "user", content: "a" })) }), "invalid_parameter messages");
  assert.equal(field({ messages: Array.from({ length: 256 }, () => ({ role: "user", content: "a" })) }), "ok");
  assert.equal(field({ messages: [{ role: "developer", content: "a" }] }), "invalid_parameter messages.0.role");
  assert.equal(field({ messages: [{ role: "user", content: 3 }] }), "invalid_parameter messages.0.content");
  assert.equal(field({ messages: null }), "invalid_parameter messages");
  assert.equal(field({ prompt: "", messages }), "invalid_parameter prompt");
});

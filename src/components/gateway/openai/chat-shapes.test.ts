/**
 * The chat and completion shapes: typed as the `openai` package's types (the assignments below fail
 * the type check if a shape drifts), and read back by the real SDK through a fetch that answers with
 * what the builders made, so the SDK's own parsing and stream helpers judge them. No network.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import OpenAI from "openai";
import type { ChatCompletion, ChatCompletionChunk } from "openai/resources/chat/completions";
import type { Completion } from "openai/resources/completions";
import type { StreamEvent } from "../../../domain/ports.js";
import {
  SSE_DONE,
  chatChunk,
  chatChunksFor,
  chatCompletionBody,
  chatCompletionId,
  chatFinishChunk,
  chatRoleChunk,
  chatUsageChunk,
  completionBody,
  completionChunk,
  completionChunksFor,
  completionId,
  completionUsageChunk,
  openAiFinishReason,
  requestIdOf,
  sseData,
  type ChunkContext,
} from "./chat-shapes.js";

const requestId = "0b6f4a1e-5c2d-4e8f-9a7b-3c1d2e4f5a6b";
const createdAt = new Date("2026-12-01T10:00:00.900Z");
const usage = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 };
const ctx: ChunkContext = { requestId, createdAt, model: "demo" };

/** A client whose every request is answered with `body` (JSON or an SSE stream). */
function clientAnswering(body: string, sse: boolean): OpenAI {
  return new OpenAI({
    apiKey: "test",
    baseURL: "http://gateway.invalid/v1",
    maxRetries: 0,
    fetch: async () =>
      new Response(body, { status: 200, headers: { "content-type": sse ? "text/event-stream" : "application/json" } }),
  });
}

const stream = (events: StreamEvent[], c: ChunkContext = ctx) => events.flatMap((e) => chatChunksFor(c, e)).map(sseData).join("") + SSE_DONE;

const finalEvent = (seq: number, extra: Partial<Extract<StreamEvent, { type: "final" }>> = {}): StreamEvent => ({
  seq,
  type: "final",
  status: "completed",
  usage,
  finishReason: "stop",
  error: null,
  ...extra,
});

describe("ids", () => {
  it("are OpenAI's prefixes before the request id, and lead back to it", () => {
    assert.equal(chatCompletionId(requestId), `chatcmpl-${requestId}`);
    assert.equal(completionId(requestId), `cmpl-${requestId}`);
    assert.equal(requestIdOf(chatCompletionId(requestId)), requestId);
    assert.equal(requestIdOf(completionId(requestId)), requestId);
    assert.equal(requestIdOf(`CHATCMPL-${requestId}`), null, "prefixes are exact");
    assert.equal(requestIdOf(`chatcmpl-${requestId.toUpperCase()}`), requestId, "the id is lower-cased");
    for (const junk of ["", "chatcmpl-", `chatcmpl-${requestId}x`, `resp_${requestId}`, requestId, "cmpl-../etc"]) {
      assert.equal(requestIdOf(junk), null, junk);
    }
  });
});

describe("whole answers", () => {
  it("a chat completion is OpenAI's, one choice per text, and the SDK reads it back unchanged", async () => {
    const body: ChatCompletion = chatCompletionBody({ requestId, createdAt, model: "demo", text: ["Hi", "Yo"], finishReason: ["stop", "length"], usage });
    assert.deepEqual(body, {
      id: `chatcmpl-${requestId}`,
      object: "chat.completion",
      created: 1796119200,
      model: "demo",
      choices: [
        { index: 0, message: { role: "assistant", content: "Hi", refusal: null }, logprobs: null, finish_reason: "stop" },
        { index: 1, message: { role: "assistant", content: "Yo", refusal: null }, logprobs: null, finish_reason: "length" },
      ],
      usage,
    });
    const read = await clientAnswering(JSON.stringify(body), false).chat.completions.create({ model: "demo", messages: [{ role: "user", content: "x" }] });
    assert.deepEqual(read, body);
  });

  it("a completion is text_completion, and the SDK reads it back unchanged", async () => {
    const body: Completion = completionBody({ requestId, createdAt, model: "demo", text: ["a"], finishReason: ["cancelled"], usage });
    assert.equal(body.object, "text_completion");
    assert.equal(body.id, `cmpl-${requestId}`);
    assert.deepEqual(body.choices, [{ index: 0, text: "a", logprobs: null, finish_reason: "stop" }]);
    assert.deepEqual(await clientAnswering(JSON.stringify(body), false).completions.create({ model: "demo", prompt: "x" }), body);
  });

  it("cancelled answers stop (the SDK has no cancelled); length stays length", () => {
    assert.equal(openAiFinishReason("cancelled"), "stop");
    assert.equal(openAiFinishReason("length"), "length");
    assert.equal(openAiFinishReason("stop"), "stop");
  });

  it("unknown usage is left out, not zeros; a texts/reasons mismatch throws", () => {
    const body = chatCompletionBody({ requestId, createdAt, model: "demo", text: ["a"], finishReason: ["cancelled"], usage: null });
    assert.equal("usage" in body, false);
    assert.throws(() => completionBody({ requestId, createdAt, model: "demo", text: ["a", "b"], finishReason: ["stop"], usage }), /2 texts but 1/);
  });
});

describe("streamed chunks", () => {
  it("each is a chat.completion.chunk (role first, then content, then the finish reason)", () => {
    const role: ChatCompletionChunk = chatRoleChunk(ctx, 0);
    assert.deepEqual(role.choices, [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
    assert.deepEqual(chatChunk(ctx, 1, { content: "x" }).choices[0], { index: 1, delta: { content: "x" }, logprobs: null, finish_reason: null });
    assert.equal(chatFinishChunk(ctx, 0, "cancelled").choices[0]?.finish_reason, "stop");
    assert.deepEqual(chatFinishChunk(ctx, 0, "length").choices[0]?.delta, {});
    assert.equal("usage" in role, false, "no usage key unless include_usage");
    assert.equal(chatChunk({ ...ctx, includeUsage: true }, 0, {}).usage, null, "include_usage: null on every chunk but the last");
  });

  it("the usage chunk has no choices, and completion chunks finish with null until the end", () => {
    const u: ChatCompletionChunk = chatUsageChunk(ctx, usage);
    assert.deepEqual([u.choices, u.usage], [[], usage]);
    assert.deepEqual(completionChunk(ctx, 0, "ab").choices, [{ index: 0, text: "ab", logprobs: null, finish_reason: null }]);
    assert.deepEqual(completionUsageChunk(ctx, usage).choices, []);
  });

  it("SSE frames are one data line each and the stream ends with [DONE]", () => {
    assert.equal(sseData({ a: "x\ny" }), 'data: {"a":"x\\ny"}\n\n');
    assert.equal(SSE_DONE, "data: [DONE]\n\n");
  });

  it("the SDK's chat stream helper assembles the stream into the whole answer", async () => {
    const events: StreamEvent[] = [
      { seq: 1, type: "delta", text: "Hel" },
      { seq: 2, type: "delta", text: "" },
      { seq: 3, type: "delta", text: "lo" },
      finalEvent(4, { finishReason: "length" }),
    ];
    const withUsage = { ...ctx, includeUsage: true };
    const client = clientAnswering(stream(events, withUsage), true);
    const helper = client.chat.completions.stream({ model: "demo", messages: [{ role: "user", content: "x" }], stream_options: { include_usage: true } });
    const final = await helper.finalChatCompletion();
    assert.equal(final.id, `chatcmpl-${requestId}`);
    assert.deepEqual(final.choices[0]?.message.content, "Hello");
    assert.equal(final.choices[0]?.finish_reason, "length");
    assert.deepEqual(final.usage, usage);
  });

  it("a stream with no text still names the role; a cancelled one ends with stop", async () => {
    const chunks = chatChunksFor(ctx, finalEvent(1, { status: "cancelled", finishReason: "cancelled", usage: null }));
    assert.deepEqual(
      chunks.map((c) => [c.choices[0]?.delta, c.choices[0]?.finish_reason]),
      [
        [{ role: "assistant", content: "" }, null],
        [{}, "stop"],
      ],
    );
    const raw = await clientAnswering(chunks.map(sseData).join("") + SSE_DONE, true).chat.completions.create({
      model: "demo",
      messages: [{ role: "user", content: "x" }],
      stream: true,
    });
    const seen: ChatCompletionChunk[] = [];
    for await (const chunk of raw) seen.push(chunk);
    assert.deepEqual(seen, chunks);
  });

  it("a failed final yields no chunk (the route writes the error); without usage no usage chunk", () => {
    assert.deepEqual(chatChunksFor(ctx, finalEvent(2, { status: "failed", finishReason: null, usage: null, error: { code: "timeout", message: "t" } })), []);
    assert.deepEqual(completionChunksFor({ ...ctx, includeUsage: true }, finalEvent(2, { usage: null })).length, 1);
  });

  it("completion chunks stream through the SDK as sent", async () => {
    const events: StreamEvent[] = [{ seq: 1, type: "delta", text: "ab" }, finalEvent(2)];
    const c = { ...ctx, includeUsage: true };
    const chunks = events.flatMap((e) => completionChunksFor(c, e));
    assert.deepEqual(
      chunks.map((k) => [k.choices[0]?.text, k.choices[0]?.finish_reason, k.usage]),
      [
        ["ab", null, null],
        ["", "stop", null],
        [undefined, undefined, usage],
      ],
    );
    const raw = await clientAnswering(chunks.map(sseData).join("") + SSE_DONE, true).completions.create({ model: "demo", prompt: "x", stream: true });
    const seen: unknown[] = [];
    for await (const chunk of raw) seen.push(chunk);
    assert.deepEqual(seen, chunks);
  });
});

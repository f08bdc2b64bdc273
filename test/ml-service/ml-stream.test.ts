/**
 * The worker's streamed model call against the real ML Service (real HTTP, the real stories260K
 * model, the internal token): the deltas are the non-streamed text, a cancel stops the generation
 * and reports exactly the tokens streamed so far, chat messages get the model's template, and a
 * stopped service is ml_unreachable. The whole call of a client that is not streaming: a cancel
 * stops it by id and settles exactly the tokens of the text it returns.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startMlService } from "../../src/components/ml-service/index.js";
import type { RequestMessage } from "../../src/domain/contracts.js";
import { createKeepAliveAgent, type KeepAliveAgent } from "../../src/components/worker/http-post.js";
import { MlCallError, generate, type MlClientOptions, type MlRequest } from "../../src/components/worker/ml-client.js";
import { generateStream } from "../../src/components/worker/ml-stream.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel } from "../support/model.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();
const TOKEN = "test-internal-token-stream-0123456789";

const message = (prompt: string, params: Partial<RequestMessage["params"]> = {}): RequestMessage =>
  ({
    v: 1,
    request_id: "00000000-0000-4000-8000-000000000003",
    user_id: "u",
    model: "stories260K",
    prompt,
    stream: true,
    params: { max_length: 60, temperature: 0, top_p: 0.9, top_k: 50, repetition_penalty: 1.2, num_return_sequences: 1, seed: 42, ...params },
    reserved_tokens: 100,
    attempt: 1,
    created_at: new Date(0).toISOString(),
  }) as unknown as RequestMessage;

describe("generateStream against the real ML Service", { skip }, () => {
  let ml: Awaited<ReturnType<typeof startMlService>>;
  let agent: KeepAliveAgent;
  let options: MlClientOptions;

  before(async () => {
    ml = await startMlService(storiesConfig({ token: TOKEN, contextSize: 2048 }), { logger: silentLogger });
    await ml.ready;
    agent = createKeepAliveAgent();
    options = { baseUrl: ml.url, api: "native", timeoutMs: 20_000, agent, token: TOKEN };
  });
  after(async () => {
    agent?.destroy();
    await ml?.stop();
  });

  const streamed = async (m: MlRequest, signalAfter?: number) => {
    const deltas: string[] = [];
    const controller = new AbortController();
    const result = await generateStream(
      options,
      m,
      {
        onDelta: (d) => {
          deltas.push(d);
          if (deltas.length === signalAfter) controller.abort();
        },
      },
      controller.signal,
    );
    return { result, deltas };
  };

  it("the deltas, concatenated, are the outputText and the non-streamed text (greedy, same seed), usage included", async () => {
    const m = message("Once upon a time");
    const plain = await generate(options, m);
    const { result, deltas } = await streamed(m);
    assert.ok(deltas.length > 5);
    assert.ok(deltas.every((d) => d.length > 0));
    assert.equal(deltas.join(""), result.outputText);
    assert.equal(result.outputText, plain.outputText);
    assert.deepEqual(result.usage, plain.usage);
    assert.equal(result.model, "stories260K");
    assert.equal(result.finishReason, "length");
    assert.equal(result.usage.completion_tokens, 60);
    const stopped = await streamed(message("Once upon a time", { stop: ["Lily"] }));
    assert.equal(stopped.result.finishReason, "stop");
    assert.ok(!stopped.result.outputText.includes("Lily"));
  });

  it("chat messages stream with the model's chat template: the non-streamed chat answer, more prompt tokens than the bare text", async () => {
    const text = "Tell me a story about a dog.";
    const chat: MlRequest = { ...message(text, { max_length: 30 }), messages: [{ role: "user", content: text }] };
    const { result, deltas } = await streamed(chat);
    const plain = await generate(options, chat);
    assert.equal(deltas.join(""), plain.outputText);
    assert.deepEqual(result.usage, plain.usage);
    const bare = await generate(options, message(text, { max_length: 30 }));
    assert.notEqual(result.usage.prompt_tokens, bare.usage.prompt_tokens, "the template's tokens are counted");
    // The same conversation through the OpenAI-compatible route (the api: "openai" fallback).
    const openAi = await generateStream({ ...options, api: "openai" }, chat, {});
    assert.equal(openAi.outputText, plain.outputText);
    assert.deepEqual(openAi.usage, plain.usage);
  });

  it("a cancel after 3 deltas resolves 'cancelled' with exactly what was streamed, and stops the generation", async () => {
    const metric = async () => {
      const body = await (await fetch(`${ml.url}/metrics`)).text();
      return Number(/^ml_requests_aborted_total\{[^}]*\} (\d+)/m.exec(body)?.[1] ?? 0);
    };
    const abortedBefore = await metric();
    const m = message("Once upon a time", { max_length: 1500 });
    const whole = await generate(options, { ...m, params: { ...m.params, max_length: 200 } });
    const { result, deltas } = await streamed(m, 3);
    assert.equal(result.finishReason, "cancelled");
    assert.equal(deltas.length, 3, "no delta after the cancel");
    assert.equal(result.outputText, deltas.join(""));
    assert.ok(whole.outputText.startsWith(result.outputText), "the streamed text is the greedy answer's start");
    const u = result.usage;
    assert.equal(u.prompt_tokens, whole.usage.prompt_tokens);
    assert.ok(u.prompt_tokens > 0);
    assert.ok(u.completion_tokens >= 3, `${u.completion_tokens} tokens for 3 deltas`);
    // Exactly the tokens of the text streamed: the non-streamed answer of that many tokens is that text.
    const short = await generate(options, { ...m, params: { ...m.params, max_length: u.completion_tokens } });
    assert.equal(short.outputText, result.outputText);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    // The service saw the disconnect and stopped generating (not 1500 tokens later).
    for (let i = 0; i < 200 && (await metric()) === abortedBefore; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await metric(), abortedBefore + 1, "the generation was aborted on the service");
    const health = (await (await fetch(`${ml.url}/health`)).json()) as { busy: boolean };
    assert.equal(health.busy, false);
  });

  it("a client not streaming: a cancel stops the whole call by id, which answers exactly the tokens of its text", async () => {
    const metric = async () => {
      const body = await (await fetch(`${ml.url}/metrics`)).text();
      return Number(/^ml_requests_aborted_total\{[^}]*\} (\d+)/m.exec(body)?.[1] ?? 0);
    };
    const abortedBefore = await metric();
    const m: MlRequest = { ...message("Once upon a time", { max_length: 1500 }), stream: undefined };
    const whole = await generate(options, { ...m, params: { ...m.params, max_length: 200 } });
    const controller = new AbortController();
    const call = generateStream(options, m, {}, controller.signal);
    // Cancelled once the service is generating it (its running gauge says so).
    for (let i = 0; i < 500; i++) {
      const health = (await (await fetch(`${ml.url}/health`)).json()) as { busy: boolean };
      if (health.busy) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    controller.abort();
    const result = await call;
    assert.equal(result.finishReason, "cancelled");
    const u = result.usage;
    assert.equal(u.prompt_tokens, whole.usage.prompt_tokens);
    assert.ok(u.completion_tokens < 1500, `stopped early: ${u.completion_tokens} tokens`);
    assert.ok(whole.outputText.startsWith(result.outputText) || result.outputText.startsWith(whole.outputText));
    if (u.completion_tokens > 0) {
      const short = await generate(options, { ...m, params: { ...m.params, max_length: u.completion_tokens } });
      assert.equal(short.outputText, result.outputText, "the text answered is exactly the tokens counted");
    }
    assert.equal(await metric(), abortedBefore + 1, "the generation was aborted on the service");
  });

  it("an error answer from the service keeps its code; a stopped service is ml_unreachable, transient", async () => {
    const tooLong = await generateStream(options, message("word ".repeat(3000)), {}).catch((e: unknown) => e);
    assert.ok(tooLong instanceof MlCallError);
    assert.equal(tooLong.code, "prompt_too_long");
    assert.equal(tooLong.transient, false);
    const wrongToken = await generateStream({ ...options, token: "nope" }, message("hi"), {}).catch((e: unknown) => e);
    assert.ok(wrongToken instanceof MlCallError);
    assert.equal(wrongToken.code, "unauthorized");

    await ml.stop();
    const down = await generateStream(options, message("Once upon a time"), {}).catch((e: unknown) => e);
    assert.ok(down instanceof MlCallError, String(down));
    assert.equal(down.code, "ml_unreachable");
    assert.equal(down.transient, true);
  });
});

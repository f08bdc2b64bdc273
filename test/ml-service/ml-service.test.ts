/**
 * The ML Service with the real, trained stories260K model: contract of POST /inference, honest
 * token counts and sampling parameters, streaming, errors, health, metrics, back-pressure.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getLlama, type Llama, type LlamaModel } from "node-llama-cpp";
import type { FastifyInstance } from "fastify";
import { buildMlServiceApp } from "../../src/components/ml-service/index.js";
import type { Engine } from "../../src/engines/types.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel, STORIES_MODEL_PATH } from "../support/model.js";
import { ndjson, sseData, storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();

describe("ml-service with stories260K", { skip }, () => {
  let app: FastifyInstance;
  let engine: Engine;
  let healthBeforeReady: { status: number; body: Record<string, unknown> };
  let llama: Llama;
  let tokenizerModel: LlamaModel;

  before(async () => {
    const built = await buildMlServiceApp(storiesConfig(), { logger: silentLogger });
    app = built.app;
    engine = built.engine;
    const h = await app.inject({ method: "GET", url: "/health" });
    healthBeforeReady = { status: h.statusCode, body: h.json() };
    await built.ready;
    // An independent tokenizer to check the counts the service reports.
    llama = await getLlama({ gpu: false, build: "never" });
    tokenizerModel = await llama.loadModel({ modelPath: STORIES_MODEL_PATH });
  });
  after(async () => {
    await app?.close();
    await tokenizerModel?.dispose();
    await llama?.dispose();
  });

  const infer = async (payload: Record<string, unknown>) => app.inject({ method: "POST", url: "/inference", payload });

  test("/health is 503 loading before the model is loaded, then 200 with model and device", async () => {
    assert.equal(healthBeforeReady.status, 503);
    assert.equal(healthBeforeReady.body.status, "loading");
    assert.equal(healthBeforeReady.body.loaded, false);
    const res = await app.inject({ method: "GET", url: "/health" });
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.status, "ok");
    assert.equal(body.loaded, true);
    assert.equal(body.model, "stories260K");
    assert.equal(body.device, "cpu");
    assert.equal(body.demo_model, false);
    assert.equal(body.busy, false);
    assert.equal(body.queue, 0);
    assert.equal((await app.inject({ method: "GET", url: "/livez" })).statusCode, 200);
  });

  test("greedy 'Once upon a time' gives the same coherent story twice", async () => {
    const a = (await infer({ prompt: "Once upon a time", temperature: 0, max_length: 40 })).json();
    const b = (await infer({ prompt: "Once upon a time", temperature: 0, max_length: 40 })).json();
    assert.equal(a.output_text, b.output_text);
    assert.match(a.output_text, /there was a little girl named Lily/);
    assert.equal(a.model, "stories260K");
    assert.equal(typeof a.processing_time, "number");
  });

  test("usage counts are the model tokenizer's", async () => {
    const prompt = "Once upon a time";
    const res = await infer({ prompt, temperature: 0, max_length: 30 });
    assert.equal(res.statusCode, 200);
    const { token_usage: u, output_text: text } = res.json();
    const promptTokens = tokenizerModel.tokenize(prompt, false, "trimLeadingSpace").length + 1; // + BOS
    assert.equal(u.prompt_tokens, promptTokens);
    assert.equal(u.completion_tokens, 30, "max_length is honoured exactly");
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    const whole = tokenizerModel.tokenize(prompt + text, false, "trimLeadingSpace").length + 1;
    assert.equal(whole, u.total_tokens, "prompt + completion retokenizes to the reported total");
  });

  test("streaming (NDJSON) yields exactly the non-streaming text, the last line carries the counts", async () => {
    const body = { prompt: "The cat", temperature: 0, max_length: 50 };
    const plain = (await infer(body)).json();
    const res = await infer({ ...body, stream: true });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /application\/x-ndjson/);
    const lines = ndjson(res.body);
    const last = lines.at(-1) as Record<string, unknown>;
    assert.equal(last.is_finished, true);
    assert.deepEqual(last.token_usage, plain.token_usage);
    assert.ok(lines.slice(0, -1).every((l) => l.is_finished === false && typeof l.token === "string"));
    assert.equal(lines.map((l) => l.token).join(""), plain.output_text);
  });

  test("NDJSON lines carry cumulative counts: a first line before any token, exact counts, the last equal to token_usage", async () => {
    const body = { prompt: "The cat", temperature: 0, max_length: 40 };
    const plain = (await infer(body)).json();
    const lines = ndjson((await infer({ ...body, stream: true })).body);
    const P = plain.token_usage.prompt_tokens;
    assert.deepEqual(lines[0], { token: "", is_finished: false, prompt_tokens: P, completion_tokens: 0 }, "the first line: prompt counted, no token yet");
    const tokens = lines.slice(1, -1);
    assert.ok(tokens.length > 0);
    let previous = 0;
    for (const l of tokens) {
      assert.equal(l.prompt_tokens, P);
      assert.equal(typeof l.completion_tokens, "number");
      // Every line with text carries at least one more token; counts never go back.
      const c = l.completion_tokens as number;
      assert.ok(String(l.token).length > 0 ? c > previous : c >= previous, `counts grow: ${previous} then ${c}`);
      previous = c;
    }
    const last = lines.at(-1) as Record<string, unknown>;
    assert.equal(last.is_finished, true);
    assert.deepEqual(last.token_usage, plain.token_usage);
    assert.equal(last.prompt_tokens, P);
    assert.equal(last.completion_tokens, plain.token_usage.completion_tokens);
    assert.equal(tokens.at(-1)?.completion_tokens, plain.token_usage.completion_tokens, "the last token line already holds every token");
    // Exact: the text streamed up to the line counting k tokens is the whole answer of max_length k.
    for (const k of [1, 7, 23]) {
      const at = tokens.findIndex((l) => l.completion_tokens === k);
      assert.ok(at >= 0, `a line counts ${k} tokens`);
      const streamed = tokens.slice(0, at + 1).map((l) => l.token).join("");
      const short = (await infer({ ...body, max_length: k })).json();
      assert.equal(short.token_usage.completion_tokens, k);
      assert.equal(streamed, short.output_text, `the text of the first ${k} tokens`);
    }
    assert.equal(tokens.map((l) => l.token).join(""), plain.output_text);
  });

  test("/inference takes chat messages and formats them with the model's chat template", async () => {
    const text = "Tell me a story.";
    const messages = [{ role: "user", content: text }];
    const chat = await infer({ messages, temperature: 0, max_length: 12 });
    assert.equal(chat.statusCode, 200, chat.body);
    const asPrompt = (await infer({ prompt: text, temperature: 0, max_length: 12 })).json();
    const u = chat.json().token_usage;
    assert.equal(u.completion_tokens, 12);
    assert.notEqual(u.prompt_tokens, asPrompt.token_usage.prompt_tokens, "the template adds its own tokens");
    // The same template as the OpenAI chat route.
    const openAi = (
      await app.inject({ method: "POST", url: "/v1/chat/completions", payload: { messages, max_tokens: 12, temperature: 0 } })
    ).json();
    assert.equal(u.prompt_tokens, openAi.usage.prompt_tokens);
    assert.equal(chat.json().output_text, openAi.choices[0].message.content);
    // Streamed: the first line knows the templated prompt's count.
    const lines = ndjson((await infer({ messages, temperature: 0, max_length: 12, stream: true })).body);
    assert.equal(lines[0]?.prompt_tokens, u.prompt_tokens);
    assert.equal(lines.map((l) => l.token).join(""), chat.json().output_text);
    assert.deepEqual(lines.at(-1)?.token_usage, u);
  });

  test("/inference wants exactly one of prompt and messages", async () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ prompt: "a", messages: [{ role: "user", content: "a" }] }, "invalid_parameter", "messages"],
      [{ max_length: 3 }, "missing_prompt", "prompt"],
      [{ messages: [] }, "invalid_parameter", "messages"],
      [{ messages: [{ role: "tool", content: "a" }] }, "invalid_parameter", "messages.0.role"],
      [{ messages: [{ role: "user" }] }, "invalid_parameter", "messages.0.content"],
      [{ messages: "hi" }, "invalid_parameter", "messages"],
    ];
    for (const [payload, code, field] of cases) {
      const res = await infer(payload);
      assert.equal(res.statusCode, 400, JSON.stringify(payload));
      assert.equal(res.json().error.code, code, JSON.stringify(payload));
      assert.equal(res.json().error.details?.field, field, JSON.stringify(payload));
    }
  });

  test("OpenAI SSE streaming yields the non-streaming text and ends with [DONE]", async () => {
    const body = { model: "stories260K", prompt: "The dog", temperature: 0, max_tokens: 40 };
    const plain = (await app.inject({ method: "POST", url: "/v1/completions", payload: body })).json();
    const res = await app.inject({ method: "POST", url: "/v1/completions", payload: { ...body, stream: true, stream_options: { include_usage: true } } });
    assert.match(String(res.headers["content-type"]), /text\/event-stream/);
    const events = sseData(res.body);
    assert.equal(events.at(-1), "[DONE]");
    const chunks = events.filter((e): e is Record<string, unknown> => e !== "[DONE]");
    const text = chunks.flatMap((c) => (c.choices as Array<{ text: string }>).map((x) => x.text)).join("");
    assert.equal(text, plain.choices[0].text);
    assert.deepEqual(chunks.at(-1)?.usage, plain.usage);
  });

  test("stop strings end the text before the stop; finish_reason says why", async () => {
    const res = (await infer({ prompt: "Once upon a time", temperature: 0, max_length: 60, stop: ["Lily"] })).json();
    assert.ok(!res.output_text.includes("Lily"));
    assert.match(res.output_text, /named ?$/);
    assert.equal(res.finish_reason, "stop");
  });

  test("seed makes sampling reproducible; num_return_sequences returns that many outputs", async () => {
    const body = { prompt: "Tom had a", temperature: 1, top_k: 0, top_p: 1, max_length: 30, seed: 1234 };
    const a = (await infer(body)).json();
    const b = (await infer(body)).json();
    assert.equal(a.output_text, b.output_text);
    const seeds = await Promise.all([1, 2, 3, 4].map((seed) => infer({ ...body, seed })));
    assert.ok(new Set(seeds.map((r) => r.json().output_text)).size > 1, "different seeds give different samples");
    const many = (await infer({ ...body, num_return_sequences: 3 })).json();
    assert.equal(many.outputs.length, 3);
    assert.equal(many.output_text, many.outputs[0]);
    assert.equal(many.token_usage.completion_tokens, 90);
  });

  test("bad parameters are 400 with a stable code; never a 500", async () => {
    const cases: Array<[unknown, string, number]> = [
      [{}, "missing_prompt", 400],
      [{ prompt: "a", temperature: 3 }, "invalid_parameter", 400],
      [{ prompt: "a", max_length: 0 }, "invalid_parameter", 400],
      [{ prompt: "a", model: "gpt-4" }, "model_not_found", 404],
      [{ prompt: "a", stream: true, num_return_sequences: 2 }, "invalid_parameter", 400],
      [{ prompt: "word ".repeat(2000) }, "prompt_too_long", 400],
    ];
    for (const [payload, code, status] of cases) {
      const res = await app.inject({ method: "POST", url: "/inference", payload: payload as Record<string, unknown> });
      assert.equal(res.statusCode, status, JSON.stringify(payload).slice(0, 80));
      assert.equal(res.json().error.code, code);
    }
    const bad = await app.inject({ method: "POST", url: "/inference", headers: { "content-type": "application/json" }, payload: "{nope" });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, "invalid_json");
    const text = await app.inject({ method: "POST", url: "/inference", headers: { "content-type": "text/plain" }, payload: "hi" });
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().error.code, "unsupported_media_type");
    const missing = await app.inject({ method: "GET", url: "/nope" });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, "not_found");
  });

  test("/v1/models lists the model; chat answers with usage", async () => {
    const models = (await app.inject({ method: "GET", url: "/v1/models" })).json();
    assert.equal(models.object, "list");
    assert.equal(models.data[0].id, "stories260K");
    const chat = await app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      payload: { model: "stories260K", messages: [{ role: "user", content: "Tell me a story." }], max_tokens: 12, temperature: 0 },
    });
    assert.equal(chat.statusCode, 200);
    const body = chat.json();
    assert.equal(body.object, "chat.completion");
    assert.equal(body.choices[0].message.role, "assistant");
    assert.equal(body.usage.completion_tokens, 12);
    assert.ok(body.usage.prompt_tokens > 5);
  });

  test("/metrics exposes requests, tokens, processing time and running/waiting gauges", async () => {
    const res = await app.inject({ method: "GET", url: "/metrics" });
    assert.equal(res.statusCode, 200);
    for (const name of [
      'ml_requests_total{model="stories260K"',
      'ml_tokens_processed_total{type="prompt",model="stories260K"',
      'ml_tokens_processed_total{type="completion",model="stories260K"',
      "ml_processing_seconds_bucket",
      "ml_requests_running",
      "ml_requests_waiting",
      "process_resident_memory_bytes",
      // Refusals counted by code (the bad-parameter test above sent them), HTTP metrics from the shell.
      'ml_request_errors_total{model="stories260K",code="invalid_parameter"',
      'ml_request_errors_total{model="stories260K",code="unsupported_media_type"',
      'ml_request_errors_total{model="stories260K",code="invalid_json"',
      'http_requests_total{route="/inference",method="POST",status="400"',
    ]) {
      assert.ok(res.body.includes(name), `metrics include ${name}`);
    }
  });
});

describe("ml-service back-pressure and truncation", { skip }, () => {
  test("a full wait queue answers 503 queue_full with Retry-After", async () => {
    const { app, engine, ready } = await buildMlServiceApp(storiesConfig({ batchSequences: 1, queueLimit: 1, contextSize: 2048 }), {
      logger: silentLogger,
    });
    try {
      await ready;
      const long = { prompt: "Once upon a time", temperature: 0, max_length: 1500 };
      const first = app.inject({ method: "POST", url: "/inference", payload: { ...long, stream: true } });
      const second = app.inject({ method: "POST", url: "/inference", payload: long });
      while (engine.stats().running < 1 || engine.stats().waiting < 1) await new Promise((r) => setTimeout(r, 2));
      const health = (await app.inject({ method: "GET", url: "/health" })).json();
      assert.equal(health.busy, true);
      assert.equal(health.queue, 1);
      const third = await app.inject({ method: "POST", url: "/inference", payload: long });
      assert.equal(third.statusCode, 503);
      assert.equal(third.json().error.code, "queue_full");
      assert.equal(third.headers["retry-after"], "1");
      engine.abortAll();
      await second;
      // The streamed one, cut by the service itself (as when it stops): not a normal end but an error line.
      const lines = ndjson((await first).body);
      assert.equal(lines[0]?.completion_tokens, 0);
      assert.deepEqual(lines.at(-1)?.error && { code: (lines.at(-1)?.error as { code: string }).code, is_finished: lines.at(-1)?.is_finished }, {
        code: "service_unavailable",
        is_finished: true,
      });
    } finally {
      await app.close();
    }
  });

  test("with truncation enabled a too-long prompt is cut to fit instead of refused", async () => {
    const { app, ready } = await buildMlServiceApp(storiesConfig({ contextSize: 128, truncatePrompt: true }), { logger: silentLogger });
    try {
      await ready;
      const res = await app.inject({ method: "POST", url: "/inference", payload: { prompt: "word ".repeat(400), max_length: 10, temperature: 0 } });
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.equal(body.prompt_truncated, true);
      const health = (await app.inject({ method: "GET", url: "/health" })).json();
      assert.ok(body.token_usage.total_tokens <= health.context_size);
      assert.equal(body.token_usage.completion_tokens, 10);
    } finally {
      await app.close();
    }
  });
});

/**
 * Over real HTTP: the official `openai` client against the OpenAI-compatible endpoints, a client
 * that disconnects mid-stream (its generation must stop), stop() during a generation, the demo
 * model, and a bounded model download.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { buildMlServiceApp, startMlService } from "../../src/components/ml-service/index.js";
import { resolveModelSource } from "../../src/engines/model-source.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel } from "../support/model.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();

describe("OpenAI client against the service", { skip }, () => {
  let service: Awaited<ReturnType<typeof startMlService>>;
  let client: OpenAI;
  before(async () => {
    service = await startMlService(storiesConfig({ contextSize: 2048 }), { logger: silentLogger });
    await service.ready;
    client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: "not-needed", maxRetries: 0 });
  });
  after(async () => service?.stop());

  test("models.list", async () => {
    const page = await client.models.list();
    assert.deepEqual(
      page.data.map((m) => m.id),
      ["stories260K"],
    );
  });

  test("completions.create and its stream agree", async () => {
    const params = { model: "stories260K", prompt: "Once upon a time", max_tokens: 25, temperature: 0 } as const;
    const done = await client.completions.create(params);
    assert.match(done.choices[0]?.text ?? "", /little girl named Lily/);
    assert.equal(done.usage?.completion_tokens, 25);
    assert.equal(done.choices[0]?.finish_reason, "length");
    const stream = await client.completions.create({ ...params, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    assert.equal(text, done.choices[0]?.text);
  });

  test("chat.completions.create and its stream agree", async () => {
    const params = { model: "stories260K", messages: [{ role: "user" as const, content: "Tell me about a cat." }], max_tokens: 20, temperature: 0 };
    const done = await client.chat.completions.create(params);
    assert.equal(done.choices[0]?.message.role, "assistant");
    assert.ok((done.choices[0]?.message.content ?? "").length > 0);
    assert.equal(done.usage?.completion_tokens, 20);
    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, done.choices[0]?.message.content);
    assert.deepEqual(usage, done.usage);
  });

  test("errors reach the client as API errors with the status and code", async () => {
    await assert.rejects(
      client.completions.create({ model: "stories260K", prompt: "x", max_tokens: 1, temperature: 5 }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && e.code === "invalid_parameter",
    );
    await assert.rejects(
      client.completions.create({ model: "nope", prompt: "x" }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 404,
    );
  });

  test("a client that disconnects mid-stream stops its generation", async () => {
    const url = new URL(`${service.url}/inference`);
    const metricsBefore = await (await fetch(`${service.url}/metrics`)).text();
    const completionBefore = Number(/ml_tokens_processed_total\{type="completion",model="stories260K"\} (\d+)/.exec(metricsBefore)?.[1] ?? 0);
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { hostname: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json" } },
        (res) => {
          res.once("data", () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on("error", () => undefined);
      req.end(JSON.stringify({ prompt: "Once upon a time", temperature: 0, max_length: 2000, stream: true }));
      setTimeout(() => reject(new Error("no first token")), 5000).unref();
    });
    // Unaborted, 2000 tokens take seconds; aborted, the sequence is free again almost at once.
    const started = Date.now();
    let health: Record<string, unknown> = {};
    while (Date.now() - started < 3000) {
      health = (await (await fetch(`${service.url}/health`)).json()) as Record<string, unknown>;
      if (health.busy === false) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(health.busy, false, "generation stopped");
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /ml_requests_aborted_total\{model="stories260K"\} 1/);
    const completion = Number(/ml_tokens_processed_total\{type="completion",model="stories260K"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(completion - completionBefore < 2000, `stopped early (${completion - completionBefore} tokens)`);
  });
});

describe("lifecycle", { skip }, () => {
  test("stop() stops accepting, lets the running generation finish, then frees the model", async () => {
    const service = await startMlService(storiesConfig({ contextSize: 2048 }), { logger: silentLogger });
    await service.ready;
    const inflight = fetch(`${service.url}/inference`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Once upon a time", temperature: 0, max_length: 200 }),
    });
    while (!((await (await fetch(`${service.url}/health`)).json()) as { busy: boolean }).busy) await new Promise((r) => setTimeout(r, 1));
    await service.stop();
    const res = await inflight;
    assert.equal(res.status, 200, "in-flight request finished");
    assert.equal(((await res.json()) as { token_usage: { completion_tokens: number } }).token_usage.completion_tokens, 200);
    await assert.rejects(fetch(`${service.url}/health`), "no longer listening");
  });

  test("without MODEL the generated demo model serves, and says it is a demo", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "ml-demo-"));
    try {
      const { app, ready } = await buildMlServiceApp(storiesConfig({ model: undefined, dataDir, modelCacheDir: join(dataDir, "models") }), {
        logger: silentLogger,
      });
      await ready;
      const health = (await app.inject({ method: "GET", url: "/health" })).json();
      assert.equal(health.demo_model, true);
      assert.equal(health.model, "demo-llama");
      assert.match(health.warning, /not meaningful/);
      const res = await app.inject({ method: "POST", url: "/inference", payload: { prompt: "hello world", max_length: 8, seed: 1 } });
      assert.equal(res.statusCode, 200);
      assert.ok(res.json().token_usage.completion_tokens >= 1);
      await app.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("an hf: model that cannot be downloaded fails within the timeout with a clear error", async () => {
    const started = Date.now();
    await assert.rejects(
      resolveModelSource({
        model: "hf:someone/some-model-GGUF:Q8_0",
        dataDir: "./data",
        cacheDir: join(tmpdir(), "ml-cache"),
        downloadTimeoutMs: 300,
        download: () => new Promise(() => undefined), // what node-llama-cpp's resolver does offline: hang
      }),
      (e: unknown) => e instanceof Error && /could not download model hf:someone\/some-model-GGUF:Q8_0 .* within 300 ms/.test(e.message),
    );
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(
      resolveModelSource({ model: "./no/such/model.gguf", dataDir: "./data", cacheDir: "./data/models", downloadTimeoutMs: 1000 }),
      /model file not found/,
    );
  });
});

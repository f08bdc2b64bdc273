/** Sampling without a seed really samples: the n choices of one request are not copies. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { FastifyInstance } from "fastify";
import { buildMlServiceApp } from "../../src/components/ml-service/index.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel } from "../support/model.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();

describe("sampling without a seed", { skip }, () => {
  let app: FastifyInstance;
  before(async () => {
    const built = await buildMlServiceApp(storiesConfig(), { logger: silentLogger });
    app = built.app;
    await built.ready;
  });
  after(async () => app?.close());

  test("num_return_sequences gives different texts at temperature 1", async () => {
    const answer = await app.inject({
      method: "POST",
      url: "/inference",
      payload: { prompt: "Once upon a time", max_length: 30, temperature: 1, top_k: 0, top_p: 1, num_return_sequences: 3 },
    });
    assert.equal(answer.statusCode, 200, answer.body);
    const outputs = answer.json().outputs as string[];
    assert.equal(outputs.length, 3);
    assert.ok(new Set(outputs).size > 1, `three identical samples: ${JSON.stringify(outputs)}`);
  });

  test("a given seed still reproduces", async () => {
    const ask = () =>
      app.inject({ method: "POST", url: "/inference", payload: { prompt: "The dog", max_length: 20, temperature: 1, seed: 42 } });
    assert.equal((await ask()).json().output_text, (await ask()).json().output_text);
  });

  test("a request too large for the queue fails with 503 and frees every sequence", async () => {
    const prompts = Array.from({ length: 16 }, (_, i) => `Story ${i}`);
    const answer = await app.inject({ method: "POST", url: "/v1/completions", payload: { prompt: prompts, max_tokens: 200, n: 5 } });
    assert.equal(answer.statusCode, 503, answer.body);
    // The siblings were stopped: the service answers the next request at once.
    const health = await app.inject({ method: "GET", url: "/health" });
    const deadline = Date.now() + 5_000;
    let body = health.json();
    while ((body.running > 0 || body.queue > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      body = (await app.inject({ method: "GET", url: "/health" })).json();
    }
    assert.equal(body.running, 0);
    assert.equal(body.queue, 0);
  });
});

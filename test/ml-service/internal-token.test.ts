/**
 * No way around the quota: with ML_SERVICE_TOKEN set, every route that runs the model demands it;
 * probes and metrics stay open. Real model, real HTTP.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startMlService } from "../../src/components/ml-service/index.js";
import { silentLogger } from "../../src/observability/logger.js";
import { requireStoriesModel } from "../support/model.js";
import { storiesConfig } from "./helpers.js";

const skip = requireStoriesModel();
const TOKEN = "test-internal-token-0123456789";

describe("ML Service internal token", { skip }, () => {
  let ml: Awaited<ReturnType<typeof startMlService>>;
  before(async () => {
    ml = await startMlService(storiesConfig({ token: TOKEN }), { logger: silentLogger });
    await ml.ready;
  });
  after(async () => {
    await ml?.stop();
  });

  const post = (path: string, body: unknown, authorization?: string) =>
    fetch(`${ml.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      body: JSON.stringify(body),
    });

  it("every model route refuses a missing or wrong token with 401, naming the fix, and runs nothing", async () => {
    const routes: Array<[string, unknown]> = [
      ["/inference", { prompt: "Once upon a time", max_length: 4 }],
      ["/v1/completions", { prompt: "Once upon a time", max_tokens: 4 }],
      ["/v1/chat/completions", { messages: [{ role: "user", content: "hi" }], max_tokens: 4 }],
    ];
    for (const [path, body] of routes) {
      for (const authorization of [undefined, "Bearer wrong-token", `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
        const response = await post(path, body, authorization);
        assert.equal(response.status, 401, `${path} with ${authorization}`);
        const error = ((await response.json()) as { error: { code: string; message: string } }).error;
        assert.equal(error.code, "unauthorized");
        assert.match(error.message, /ML_SERVICE_TOKEN/);
      }
    }
    const models = await fetch(`${ml.url}/v1/models`);
    assert.equal(models.status, 401);
    const metrics = await (await fetch(`${ml.url}/metrics`)).text();
    assert.match(metrics, /# TYPE ml_tokens_processed_total counter/, "the metric the next line reads exists");
    assert.doesNotMatch(metrics, /^ml_tokens_processed_total\{[^}]*\} [1-9]/m, "nothing was generated");
  });

  it("the right token runs the model; probes and metrics need none", async () => {
    const response = await post("/inference", { prompt: "Once upon a time", max_length: 4, temperature: 0 }, `Bearer ${TOKEN}`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { token_usage: { completion_tokens: number } };
    assert.ok(body.token_usage.completion_tokens > 0);
    for (const path of ["/health", "/livez", "/metrics"]) assert.equal((await fetch(`${ml.url}${path}`)).status, 200, path);
  });
});

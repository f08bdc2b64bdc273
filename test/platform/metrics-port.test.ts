/**
 * METRICS_PORT: /metrics moves to a port of its own (the one the manifests scrape and the Ingress
 * never routes), and the public port no longer answers it.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startPlatform, submit, type Platform } from "../support/platform.js";
import { requireStoriesModel } from "../support/model.js";

const skip = requireStoriesModel();

describe("metrics on METRICS_PORT", { skip }, () => {
  let platform: Platform;
  before(async () => {
    platform = await startPlatform({ backend: "embedded", anonymous: true, env: { METRICS_PORT: "0" } });
  });
  after(async () => {
    await platform?.stop();
  });

  it("the public port answers 404 for /metrics; the metrics port serves every component's metrics", async () => {
    assert.equal((await submit(platform.url, { prompt: "Once upon a time", max_length: 2 })).status, 202);
    const publicAnswer = await fetch(`${platform.url}/metrics`);
    assert.equal(publicAnswer.status, 404);
    assert.equal(((await publicAnswer.json()) as { error: { code: string } }).error.code, "not_found");
    assert.ok(platform.metricsUrl, "a metrics URL");
    assert.notEqual(new URL(platform.metricsUrl).port, new URL(platform.url).port);
    const metrics = await fetch(platform.metricsUrl);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /^gateway_admissions_total\{result="accepted"\} 1$/m);
    assert.match(text, /# TYPE ml_requests_total counter/, "the in-process ML Service's metrics too");
    assert.equal((await fetch(platform.metricsUrl.replace("/metrics", "/health"))).status, 404, "nothing but /metrics there");
  });
});

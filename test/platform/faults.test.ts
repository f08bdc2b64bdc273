/**
 * Admission under concurrency, retries of a model server that is down, the sweeper's repair of
 * requests stored but never published, SSE heartbeats, and draining — on real servers and embedded.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { quotaOf, startPlatform, submit, waitForFinal, type Backend, type Platform } from "../support/platform.js";
import { storeUnpublished } from "../support/requests.js";
import { createWorker, type Worker } from "../../src/components/worker/index.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { silentLogger } from "../../src/observability/logger.js";

const skipModel = requireStoriesModel();
const skipServers = await requireServices("postgres", "redis", "rabbitmq");

async function metricsOf(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`)).text();
}

/** The value of an unlabelled sample in Prometheus text. */
function sample(metrics: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics)?.[1] ?? Number.NaN);
}

function completedByWorker(metrics: string): number {
  return Number(/^worker_outcomes_total\{[^}]*status="completed"[^}]*\} (\S+)$/m.exec(metrics)?.[1] ?? 0);
}

/** Polls a condition on live state (no fixed sleep stands in for it). */
async function until(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}


for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`admission and faults on ${backend}`, { skip: backend === "servers" ? skipServers : undefined }, () => {
    let platform: Platform;
    before(async () => {
      // No model server on this port: every model call fails transiently.
      platform = await startPlatform({ backend, consumers: false, mlServiceUrl: "http://127.0.0.1:9" });
    });
    after(async () => platform?.stop());

    it("200 concurrent requests against a 100-request limit admit exactly 100", async () => {
      const user = await platform.createUser({ dailyRequests: 100 });
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => submit(platform.url, { prompt: `p${i}`, max_length: 5 }, user.authorization)),
      );
      const accepted = results.filter((r) => r.status === 202);
      const rejected = results.filter((r) => r.status === 429);
      assert.equal(accepted.length, 100);
      assert.equal(rejected.length, 100);
      for (const r of rejected) {
        assert.equal(r.body.error.code, "quota_exceeded");
        assert.equal(r.body.error.details.limit, "daily_requests");
        assert.ok(Number(r.headers.get("retry-after")) >= 1);
      }
      const stored = await platform.database.db.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM inference_requests WHERE user_id = $1", [
        user.userId,
      ]);
      assert.equal(stored.rows[0]?.n, 100, "only admitted requests are stored");
      assert.equal((await quotaOf(platform, user.authorization)).daily.requests, 100);
    });

    it("a token limit is never passed under concurrency", async () => {
      const user = await platform.createUser({ dailyTokens: 1_000 });
      const results = await Promise.all(
        Array.from({ length: 60 }, () => submit(platform.url, { prompt: "abc", max_length: 45 }, user.authorization)),
      );
      const admitted = results.filter((r) => r.status === 202);
      const reserved = admitted.reduce((sum, r) => sum + Number(r.body.estimated_tokens), 0);
      assert.ok(reserved <= 1_000, `reserved ${reserved}`);
      assert.equal(admitted.length, Math.floor(1_000 / 50));
      const rejection = results.find((r) => r.status === 429);
      assert.equal(rejection?.body.error.details.limit, "daily_tokens");
    });

    it("SSE sends heartbeats while the request waits", async () => {
      const user = await platform.createUser();
      const accepted = await submit(platform.url, { prompt: "waiting", max_length: 5 }, user.authorization);
      // The stream stays open while the request is queued: read what arrives for a while.
      const controller = new AbortController();
      const response = await fetch(`${platform.url}/events/${accepted.body.request_id}`, {
        headers: { authorization: user.authorization },
        signal: controller.signal,
      });
      const reader = response.body!.getReader();
      let text = "";
      const until = Date.now() + 900;
      while (Date.now() < until && (text.match(/: heartbeat/g) ?? []).length < 2) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      controller.abort();
      assert.match(text, /event: queued/);
      assert.ok((text.match(/: heartbeat/g) ?? []).length >= 2, text);
    });

    it("a model server that stays down: retried with back-off, then failed with a code, reservation released", async () => {
      const user = await platform.createUser({ dailyRequests: 50 });
      const accepted = await submit(platform.url, { prompt: "no model", max_length: 5 }, user.authorization);
      assert.equal(accepted.status, 202);
      await platform.startConsumers();
      const final = await waitForFinal(platform.url, accepted.body.request_id, user.authorization);
      assert.equal(final.status, "failed");
      assert.equal(final.error.code, "attempts_exhausted");
      assert.equal(final.result, null);
      const quota = await quotaOf(platform, user.authorization);
      assert.equal(quota.daily.tokens_reserved, 0);
      assert.equal(quota.daily.requests, 0);
      const metrics = await (await fetch(`${platform.url}/metrics`)).text();
      assert.match(metrics, /messages_retried_total\S* [1-9]/);
    });

    it("a request stored but never published is published by the sweeper and finishes", async () => {
      const user = await platform.createUser();
      // As if the gateway crashed between INSERT and publish.
      const requestId = await storeUnpublished(platform, user.userId, "lost", new Date(Date.now() - 120_000));
      const swept = await platform.gateway.sweep();
      assert.ok(swept.republished >= 1);
      const final = await waitForFinal(platform.url, requestId, user.authorization);
      // The model server is down in this suite, so it fails — but it was picked up and finished.
      assert.equal(final.status, "failed");
      assert.equal((await platform.requests.get(requestId))?.published, true);
      assert.equal((await platform.gateway.sweep()).republished, 0, "published once");
    });

    it("an abandoned request is expired and its reservation reclaimed", async () => {
      const user = await platform.createUser();
      const createdAt = new Date(Date.now() - platform.config.gateway.reservationTimeoutMs - 60_000);
      const requestId = await storeUnpublished(platform, user.userId, "abandoned", createdAt);
      await platform.outbox.markPublished([requestId]);
      await platform.gateway.sweep();
      const stored = await platform.requests.get(requestId);
      assert.equal(stored?.status, "failed");
      assert.equal(stored?.error?.code, "timeout");
      assert.equal((await quotaOf(platform, user.authorization)).daily.tokens_reserved, 0);
    });
  });

  describe(`draining on ${backend}`, { skip: backend === "servers" ? skipServers ?? skipModel : skipModel }, () => {
    it("stopping the worker waits for the requests in flight; nothing is lost", async () => {
      // A drain grace (60 % of the shutdown timeout) long enough for every generation held, even on a busy machine.
      const platform = await startPlatform({ backend, env: { SHUTDOWN_TIMEOUT_MS: "200000" } });
      let replacement: Worker | undefined;
      try {
        const user = await platform.createUser();
        const ids: string[] = [];
        for (let i = 0; i < 8; i++) {
          const r = await submit(platform.url, { prompt: `Sam and Sue ${i}`, max_length: 300 }, user.authorization);
          ids.push(r.body.request_id);
        }
        // In flight: the ML Service is generating for the worker (long generations, so still going
        // when stop() begins).
        await until(async () => sample(await metricsOf(platform.mlUrl), "ml_requests_running") >= 1);
        const completedBefore = completedByWorker(await metricsOf(platform.url));
        await platform.worker!.stop(); // drain: in-flight requests finish and their outcomes are published
        const afterStop = await metricsOf(platform.url);
        assert.equal(sample(afterStop, "worker_requests_in_flight"), 0);
        const drained = completedByWorker(afterStop) - completedBefore;
        assert.ok(drained >= 1, "the generations running when stop() began finished and were published, not aborted");
        await platform.collector.stop();
        await platform.collector.start();
        // A separate worker (its own consumer and metrics) takes what the stopped one left queued.
        const registry = createRegistry();
        replacement = createWorker(
          { ...platform.config.worker, mlServiceUrl: platform.mlUrl },
          { logger: silentLogger, registry, queue: platform.queue, streams: platform.streams, runs: platform.runs, requestsQueue: platform.queues.requests, resultsQueue: platform.queues.results },
        );
        await replacement.start();
        for (const id of ids) assert.equal((await waitForFinal(platform.url, id, user.authorization, 60_000)).status, "completed");
        const byReplacement = completedByWorker(await registry.metrics());
        assert.equal(completedByWorker(await metricsOf(platform.url)) + byReplacement, ids.length, "each request completed once");
      } finally {
        await replacement?.stop();
        await platform.stop();
      }
    });
  });
}

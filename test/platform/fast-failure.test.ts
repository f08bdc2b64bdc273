/**
 * Fast failure, fast recovery: with Redis unreachable, admission answers 503 within 500 ms and
 * stores or reserves nothing; once Redis answers again (empty, here), admissions succeed within 2 s.
 * The Redis is one this test started, on a port of its own; the machine's is never touched.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startPlatform, submit, type Platform } from "../support/platform.js";
import { requireServices } from "../support/services.js";
import { startRedisServer, type OwnRedis } from "../support/own-servers.js";

const skip = await requireServices("postgres", "rabbitmq");
const NO_ML = "http://127.0.0.1:9";

describe("Redis unreachable at admission", { skip }, () => {
  let redis: OwnRedis;
  let platform: Platform;
  before(async () => {
    redis = await startRedisServer();
    platform = await startPlatform({ backend: "servers", consumers: false, mlServiceUrl: NO_ML, env: { REDIS_URL: redis.url } });
  });
  after(async () => {
    await platform?.stop();
    await redis?.stop();
  });

  it("503 within 500 ms and nothing stored while down, /health names it; admitted again within 2 s of Redis coming back", async () => {
    const user = await platform.createUser({ dailyRequests: 1_000 });
    assert.equal((await submit(platform.url, { prompt: "before", max_length: 2 }, user.authorization)).status, 202);

    await redis.kill();
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const answer = await submit(platform.url, { prompt: `while down ${i}`, max_length: 2 }, user.authorization);
      latencies.push(performance.now() - started);
      assert.equal(answer.status, 503);
      assert.equal(answer.body.error.code, "service_unavailable");
      assert.ok(answer.headers.get("retry-after"), "503 carries Retry-After");
    }
    latencies.sort((a, b) => a - b);
    assert.ok(latencies[latencies.length - 1]! <= 500, `slowest 503 took ${Math.round(latencies.at(-1)!)} ms`);
    const healthStarted = performance.now();
    const health = await fetch(`${platform.url}/health`);
    assert.ok(performance.now() - healthStarted <= 1_000, "/health answers within 1 s");
    assert.equal(health.status, 503);
    assert.deepEqual(await health.json(), { status: "unavailable", down: ["quota_store"] }, "which dependency is down, nothing more");
    const stored = await platform.database.db.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM inference_requests WHERE user_id = $1", [user.userId]);
    assert.equal(stored.rows[0]!.n, 1, "nothing stored while Redis was down");

    await redis.start();
    const back = performance.now();
    for (;;) {
      const answer = await submit(platform.url, { prompt: "after", max_length: 2 }, user.authorization);
      if (answer.status === 202) break;
      assert.equal(answer.status, 503);
      assert.ok(performance.now() - back <= 2_000, "admissions did not resume within 2 s of Redis answering");
    }
    assert.equal((await fetch(`${platform.url}/health`)).status, 200);
    // Redis came back empty: the counters were rebuilt from the ledger and open requests (2 open now).
    assert.equal((await platform.quota.usage(user.userId, new Date())).daily.requests, 2);
  });
});

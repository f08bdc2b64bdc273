/**
 * Fast failure, fast recovery with a backing service blackholed: PostgreSQL, Redis or RabbitMQ keeps
 * its connections open (and accepts new ones) but nothing answers, as when its host dies or the
 * network partitions. The platform's gateway runs on the real servers, each behind a test TCP proxy
 * (test/support/tcp-proxy.ts) that is switched to blackhole and back. For each service:
 *   - admissions on both front doors (/api/v1/inference and /v1/chat/completions) answer 503
 *     service_unavailable with Retry-After, p99 of the batch within 500 ms;
 *   - nothing is stored (no row in PostgreSQL) and nothing stays reserved (the user's Redis counters);
 *   - /health answers within 1 s (503, naming the dependency);
 *   - once the service answers again, an admission succeeds within 2 s.
 * Refused connections are covered too (the proxy resets every connection).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/observability/logger.js";
import { assemble, needsOf, type Assembly } from "../../src/components/assemble.js";
import { openInfrastructure, type Infrastructure } from "../../src/runtime.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { deleteQueues } from "../support/cleanup.js";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { createTestUser } from "../support/users.js";
import { sleep, waitFor } from "../support/wait.js";

const skip = await requireServices("postgres", "redis", "rabbitmq");
const NO_ML = "http://127.0.0.1:9";
const BATCH = 40;
const WAVE = 5;
const RECONNECTS = 6;
const P99_BOUND_MS = 500;
const HEALTH_BOUND_MS = 1_000;
const RECOVERY_BOUND_MS = 2_000;

type Service = "postgres" | "redis" | "rabbitmq";
const DEPENDENCY: Record<Service, string> = { postgres: "database", redis: "quota_store", rabbitmq: "broker" };

interface Answer {
  status: number;
  ms: number;
  body: Record<string, any>;
  retryAfter: string | null;
}

describe("admission with a backing service blackholed or refusing", { skip, timeout: 120_000 }, () => {
  let database: TestDatabase;
  const proxies = {} as Record<Service, TcpProxy>;
  let infra: Infrastructure;
  let assembly: Assembly;
  let url: string;
  const queues = { requests: uniqueName("req"), results: uniqueName("res") };
  let users = 0;

  before(async () => {
    database = await freshPostgres();
    proxies.postgres = await startTcpProxy(database.url as string);
    proxies.redis = await startTcpProxy(TEST_URLS.redis);
    proxies.rabbitmq = await startTcpProxy(TEST_URLS.rabbitmq);
    // The shipped bounds (PG_QUERY_TIMEOUT_MS, REDIS_COMMAND_TIMEOUT_MS, AMQP_CONFIRM_TIMEOUT_MS…): none set here.
    const config = loadConfig(
      {
        HOST: "127.0.0.1",
        PORT: "0",
        DATABASE_URL: proxies.postgres.url,
        REDIS_URL: proxies.redis.url,
        AMQP_URL: proxies.rabbitmq.url,
        REDIS_KEY_PREFIX: `${uniqueName("t")}:`,
        QUEUE_REQUESTS: queues.requests,
        QUEUE_RESULTS: queues.results,
        ML_SERVICE_URL: NO_ML,
        ANONYMOUS_ACCESS: "false",
        // The key lookup is cached for a second, so a batch reaches admission's own steps.
        AUTH_CACHE_TTL_MS: "1000",
        SWEEP_INTERVAL_MS: "100000",
        SWEEP_UNPUBLISHED_AFTER_MS: "100",
      },
      "all",
    );
    infra = await openInfrastructure(config, needsOf("all"), silentLogger, { embeddedAllowed: false });
    assembly = await assemble("all", config, infra as never, { logger: silentLogger, holdConsumers: true });
    await assembly.ready;
    url = assembly.urls.gateway as string;
  });
  after(async () => {
    for (const proxy of Object.values(proxies)) proxy.forward();
    await assembly?.stop().catch(() => undefined);
    await infra?.close().catch(() => undefined);
    for (const proxy of Object.values(proxies)) await proxy.close();
    await deleteQueues(Object.values(queues)).catch(() => undefined);
    await database?.drop();
  });

  const native = (authorization: string, prompt: string) =>
    post("/api/v1/inference", authorization, { prompt, max_length: 2 });
  const chat = (authorization: string, prompt: string) =>
    post("/v1/chat/completions", authorization, { model: "default", messages: [{ role: "user", content: prompt }], max_tokens: 2, stream: true });

  async function post(path: string, authorization: string, body: unknown): Promise<Answer> {
    const started = performance.now();
    const response = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization }, body: JSON.stringify(body) });
    const ms = performance.now() - started;
    // A streamed chat that was admitted would run until the model answers: its head is enough.
    const text = response.status === 200 ? (await response.body?.cancel(), "{}") : await response.text();
    return { status: response.status, ms, body: JSON.parse(text) as Record<string, any>, retryAfter: response.headers.get("retry-after") };
  }

  /** Admits until one is accepted (refused ones must be 503s), failing after `ms`. */
  async function admittedWithin(authorization: string, ms: number, when: string): Promise<void> {
    const started = performance.now();
    for (;;) {
      const answer = await native(authorization, when);
      if (answer.status === 202) return;
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.ok(performance.now() - started <= ms, `no admission within ${ms} ms ${when}`);
      await sleep(20); // polling interval, not synchronisation
    }
  }

  async function healthy(ms: number): Promise<void> {
    const started = performance.now();
    while ((await fetch(`${url}/health`)).status !== 200) {
      assert.ok(performance.now() - started <= ms, `platform not healthy within ${ms} ms`);
      await sleep(20); // polling interval, not synchronisation
    }
  }

  async function storedRows(userId: string): Promise<number> {
    return (await database.db.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM inference_requests WHERE user_id = $1", [userId])).rows[0]!.n;
  }

  async function faultScenario(service: Service, fault: "blackhole" | "refuse"): Promise<void> {
    await healthy(5_000); // the scenario before may have left a connection still coming back
    const user = await createTestUser(infra.users, `user-${++users}-${service}-${fault}`);
    // Admitted before the fault (the platform may still be reconnecting after the scenario before):
    // the key is cached, every connection is warm.
    await admittedWithin(user.authorization, 5_000, "before the fault");

    proxies[service][fault]();
    try {
      // In waves of concurrent clients, half on each front door.
      const answers: Answer[] = [];
      for (let wave = 0; wave < BATCH / WAVE; wave++) {
        const prompt = (i: number) => `during ${wave}.${i}`;
        answers.push(...(await Promise.all(Array.from({ length: WAVE }, (_, i) => (i % 2 === 0 ? native(user.authorization, prompt(i)) : chat(user.authorization, prompt(i)))))));
      }
      const healthStarted = performance.now();
      const health = await fetch(`${url}/health`);
      const healthMs = performance.now() - healthStarted;
      for (const answer of answers) {
        assert.equal(answer.status, 503, `${service} ${fault}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error?.code, "service_unavailable");
        assert.ok(answer.retryAfter, "503 carries Retry-After");
      }
      const sorted = answers.map((a) => a.ms).sort((a, b) => a - b);
      if (process.env.DEBUG_BLACKHOLES) console.log(service, fault, sorted.map(Math.round).join(" "), [...new Set(answers.map((a) => a.body.error?.message))]);
      const p99 = sorted[Math.ceil(sorted.length * 0.99) - 1]!;
      assert.ok(p99 <= P99_BOUND_MS, `${service} ${fault}: p99 of ${BATCH} admissions took ${Math.round(p99)} ms`);
      assert.ok(healthMs <= HEALTH_BOUND_MS, `${service} ${fault}: /health took ${Math.round(healthMs)} ms`);
      assert.equal(health.status, 503);
      assert.deepEqual((await health.json()).down, [DEPENDENCY[service]]);
    } catch (error) {
      proxies[service].forward(); // the next scenario starts from a healthy platform
      throw error;
    }

    proxies[service].forward();
    await admittedWithin(user.authorization, RECOVERY_BOUND_MS, `after ${service} answered again`);

    // Only the admission before and the one after: nothing of the batch stored or reserved.
    assert.equal(await storedRows(user.userId), 2, `${service} ${fault}: rows of refused admissions stayed`);
    const usage = await infra.quota.usage(user.userId, new Date());
    assert.equal(usage.daily.requests, 2, `${service} ${fault}: reservations of refused admissions stayed`);
  }

  /**
   * The reconnect back-off stays short however long the outage: the connection is refused until
   * the platform has tried RECONNECTS times (a doubling back-off without a low cap would wait
   * seconds by then), and an admission still succeeds within 2 s of it answering.
   */
  async function longOutage(service: "redis" | "rabbitmq"): Promise<void> {
    await healthy(5_000);
    const user = await createTestUser(infra.users, `user-${++users}-${service}-long`);
    const proxy = proxies[service];
    proxy.refuse();
    const from = proxy.refused;
    try {
      await waitFor(`${RECONNECTS} reconnects to ${service}`, () => proxy.refused - from >= RECONNECTS, 5_000);
    } finally {
      proxy.forward();
    }
    await admittedWithin(user.authorization, RECOVERY_BOUND_MS, `after ${service} answered again`);
  }

  it("broker and then database blackholed during one admission: 202, the row stays in the outbox and the sweeper publishes it", { timeout: 20_000 }, async () => {
    await healthy(5_000);
    const user = await createTestUser(infra.users, `user-${++users}-outbox`);
    await admittedWithin(user.authorization, 5_000, "before the fault");
    proxies.rabbitmq.blackhole();
    let answer: Answer;
    try {
      const pending = native(user.authorization, "kept");
      // Stored: the admission now waits for the broker's confirm; the row cannot be removed either.
      await waitForAsync("the row to be stored", async () => (await storedRows(user.userId)) === 2);
      proxies.postgres.blackhole();
      answer = await pending;
    } finally {
      proxies.postgres.forward();
      proxies.rabbitmq.forward();
    }
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const row = await database.db.query<{ published: boolean }>("SELECT published FROM inference_requests WHERE request_id = $1", [answer.body.request_id]);
    assert.equal(row.rows[0]?.published, false, "kept unpublished, for the sweeper");
    assert.equal((await infra.quota.usage(user.userId, new Date())).daily.requests, 2, "its reservation stays with it");
    await healthy(5_000);
    const gateway = assembly.parts.gateway as { sweep(): Promise<{ republished: number }> };
    // (The admission before may be republished too: its "published" mark could not be written either.)
    assert.ok((await gateway.sweep()).republished >= 1);
    const swept = await database.db.query<{ published: boolean }>("SELECT published FROM inference_requests WHERE request_id = $1", [answer.body.request_id]);
    assert.equal(swept.rows[0]?.published, true, "the sweeper published it");
  });

  async function waitForAsync(what: string, condition: () => Promise<boolean>, ms = 3_000): Promise<void> {
    const started = performance.now();
    while (!(await condition())) {
      assert.ok(performance.now() - started <= ms, `timed out waiting for ${what}`);
      await sleep(5); // polling interval, not synchronisation
    }
  }

  for (const service of ["postgres", "redis", "rabbitmq"] as const) {
    it(`${service} blackholed: 503 within 500 ms (p99), nothing stored or reserved, admitted again within 2 s`, { timeout: 20_000 }, () => faultScenario(service, "blackhole"));
    it(`${service} refusing connections: the same`, { timeout: 20_000 }, () => faultScenario(service, "refuse"));
  }
  for (const service of ["redis", "rabbitmq"] as const) {
    it(`${service} back after a long outage (${RECONNECTS} refused reconnects): admitted again within 2 s`, { timeout: 20_000 }, () => longOutage(service));
  }
});

/**
 * The one wiring: every component refuses to start without a dependency it needs, naming it, and
 * leaves nothing running; the embedded infrastructure's recover() runs on start, so a restart of
 * `all` keeps each user's usage and sends the open requests again. Embedded adapters on an
 * in-memory PGlite; no model (the worker is pointed at a closed port and never called).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHttpApp } from "../../src/http/server.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/observability/logger.js";
import { createRegistry } from "../../src/observability/metrics.js";
import { assemble, needsOf } from "../../src/components/assemble.js";
import {
  NEEDS,
  startApiService,
  startCollector,
  startGateway,
  startMlServicePart,
  startWorker,
  type PartName,
} from "../../src/components/lifecycle.js";
import { openInfrastructure, type Infrastructure } from "../../src/runtime.js";
import { freshPglite, type TestDatabase } from "../support/databases.js";
import { submit } from "../support/platform.js";

const config = loadConfig(
  {
    HOST: "127.0.0.1",
    PORT: "0",
    ML_SERVICE_URL: "http://127.0.0.1:9",
    ANONYMOUS_ACCESS: "true",
    SWEEP_INTERVAL_MS: "100000",
    SWEEP_UNPUBLISHED_AFTER_MS: "100",
  },
  "all",
);
const processDeps = () => ({ logger: silentLogger, registry: createRegistry() });

/** A copy of the infrastructure without one adapter (as a caller with a wiring bug would pass). */
function without(infra: Infrastructure, name: string): Infrastructure {
  const copy: Record<string, unknown> = { describe: infra.describe, recover: infra.recover, close: infra.close };
  for (const key of ["requests", "batches", "backlog", "webhooks", "outbox", "stale", "users", "quota", "events", "streams", "runs", "queue"]) if (key !== name) copy[key] = (infra as unknown as Record<string, unknown>)[key];
  return copy as unknown as Infrastructure;
}

async function refuses(start: () => Promise<{ stop(): Promise<void> }>, message: string): Promise<void> {
  let started: { stop(): Promise<void> } | undefined;
  await assert.rejects(async () => {
    started = await start();
  }, (error: Error) => {
    assert.equal(error.message, message);
    assert.equal((error as { code?: string }).code, "config_invalid");
    return true;
  });
  await started?.stop();
}

describe("assemble: a missing dependency is a start-up error", () => {
  let database: TestDatabase;
  let infra: Infrastructure;
  before(async () => {
    database = await freshPglite();
    infra = await openInfrastructure(config, needsOf("all"), silentLogger, { embeddedAllowed: true, database: database.db });
  });
  after(async () => {
    await infra?.close();
    await database?.drop();
  });

  it("each component says what it needs, and `all` needs all of it", () => {
    assert.deepEqual(NEEDS.gateway, ["requests", "batches", "backlog", "webhooks", "outbox", "stale", "users", "quota", "queue", "events", "streams", "runs"]);
    assert.deepEqual(NEEDS["api-service"], ["requests", "users", "quota", "events", "streams"]);
    assert.deepEqual(NEEDS.collector, ["requests", "quota", "queue", "events", "streams"]);
    assert.deepEqual(NEEDS.worker, ["queue", "streams", "runs"]);
    assert.deepEqual(NEEDS["ml-service"], []);
    assert.deepEqual([...needsOf("all")].sort(), ["backlog", "batches", "events", "outbox", "queue", "quota", "requests", "runs", "stale", "streams", "users", "webhooks"]);
    // The types say it too: an infrastructure without the quota store does not compile for the gateway.
    const { quota: _quota, ...noQuota } = infra;
    // @ts-expect-error quota is missing
    void (() => assemble("gateway", config, noQuota, { logger: silentLogger }));
  });

  const components: Array<Exclude<PartName, "ml-service">> = ["gateway", "api-service", "collector", "worker"];
  for (const component of components) {
    it(`${component}: assemble refuses each missing adapter by name, before anything starts`, async () => {
      for (const name of NEEDS[component]) {
        await refuses(() => assemble(component, config, without(infra, name), { logger: silentLogger }), `${component} cannot start: missing ${name}`);
      }
      // `all` checks every part's needs up front as well.
      for (const name of NEEDS[component]) {
        await refuses(() => assemble("all", config, without(infra, name), { logger: silentLogger }), `all cannot start: missing ${name}`);
      }
    });
  }

  it("each component's own start(config, deps) refuses a missing dependency", async () => {
    const http = createHttpApp({ logger: silentLogger, registries: [] });
    try {
      const full = { ...infra, ...processDeps(), http };
      const drop = <T extends object>(deps: T, key: string) => Object.fromEntries(Object.entries(deps).filter(([k]) => k !== key)) as T;
      await refuses(() => startGateway(config, drop(full, "queue")), "gateway cannot start: missing queue");
      await refuses(() => startGateway(config, drop(full, "http")), "gateway cannot start: missing http");
      await refuses(() => startApiService(config, drop(full, "users")), "api-service cannot start: missing users");
      await refuses(() => startCollector(config, drop(full, "events")), "collector cannot start: missing events");
      await refuses(() => startWorker(config, drop(full, "queue")), "worker cannot start: missing queue");
      await refuses(
        () => startWorker({ ...config, worker: { ...config.worker, mlServiceUrl: undefined } }, full),
        "worker cannot start: missing the ML Service's URL (ML_SERVICE_URL)",
      );
      await refuses(() => startMlServicePart(config, drop(processDeps(), "registry")), "ml-service cannot start: missing registry");
    } finally {
      await http.close();
    }
  });

  it("every component starts when given what it needs", async () => {
    for (const component of components) {
      // A lone component's configuration names the servers; the infrastructure given is what it runs on.
      const servers = { DATABASE_URL: "postgres://unused", REDIS_URL: "redis://unused", AMQP_URL: "amqp://unused" };
      const own = loadConfig({ ...servers, HOST: "127.0.0.1", PORT: "0", ML_SERVICE_URL: "http://127.0.0.1:9" }, component);
      const assembly = await assemble(component, own, infra, { logger: silentLogger });
      try {
        const health = (await (await fetch(`${assembly.urls[component]}/health`)).json()) as { status: string; components: string[] };
        assert.equal(health.status, "ok");
        assert.deepEqual(health.components, [component]);
      } finally {
        await assembly.stop();
      }
    }
  });
});

describe("assemble: embedded recovery on start", () => {
  it("a restart of `all` rebuilds the quota from the database and publishes the open request again", async () => {
    const database = await freshPglite();
    try {
      const open = () => openInfrastructure(config, needsOf("all"), silentLogger, { embeddedAllowed: true, database: database.db });
      // First run: one request admitted and published; the process ends before any worker took it.
      const first = await open();
      const firstRun = await assemble("all", config, first, { logger: silentLogger, holdConsumers: true });
      const admitted = await submit(firstRun.urls.gateway!, { prompt: "Once upon a time", max_length: 8 });
      assert.equal(admitted.status, 202);
      await firstRun.stop();
      await first.close();

      // Second run: the in-process quota store and queue start empty; recover() refills them.
      const second = await open();
      const secondRun = await assemble("all", config, second, { logger: silentLogger, holdConsumers: true });
      try {
        const usage = await second.quota.usage("anonymous", new Date());
        assert.deepEqual(usage.daily, { requests: 1, tokensUsed: 0, tokensReserved: admitted.body.estimated_tokens });
        // The open request is due again once older than SWEEP_UNPUBLISHED_AFTER_MS.
        const due = Date.parse(admitted.body.timestamp) + config.gateway.sweepUnpublishedAfterMs + 1;
        if (Date.now() < due) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
        assert.equal((await secondRun.parts.gateway!.sweep()).republished, 1);
        assert.equal((await second.queue.stats(config.common.queues.requests)).ready, 1);
      } finally {
        await secondRun.stop();
        await second.close();
      }
    } finally {
      await database.drop();
    }
  });
});

/**
 * The short version of `npm run chaos` that runs in `npm test`: Redis restarted empty and the worker
 * killed, each while requests stream in, on the platform as separate processes (a Redis of its own;
 * private schema and queues on the machine's PostgreSQL and RabbitMQ).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { startCluster, type Cluster } from "./cluster.js";
import { formatResults, runScenario, SCENARIOS } from "./scenarios.js";

const skip = requireStoriesModel() ?? (await requireServices("postgres", "rabbitmq"));

describe("faults while requests stream in (short chaos)", { skip }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster({ ownPostgresAndRabbit: false });
  });
  after(async () => {
    await cluster?.close();
  });

  for (const name of ["Redis restarted empty", "worker killed (kill -9)"]) {
    it(`${name}: nothing lost or counted twice, counters = ledger`, async () => {
      const scenario = SCENARIOS.find((s) => s.name === name)!;
      // A daily limit the load reaches, so "never admitted past a limit" is exercised through the loss.
      const result = await runScenario(cluster, scenario, { perSecond: 15, beforeMs: 1_500, afterMs: 2_000, drainTimeoutMs: 60_000, dailyRequestLimit: 40 });
      const table = formatResults([result]);
      assert.equal(result.lost, 0, table);
      assert.equal(result.stuck, 0, table);
      assert.equal(result.countedTwice, 0, table);
      for (const invariant of result.invariants) assert.ok(invariant.ok, `${invariant.name}: ${invariant.detail}\n${table}`);
      assert.ok(result.admitted > 0, table);
    });
  }
});

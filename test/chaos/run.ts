/**
 * npm run chaos: every fault of test/chaos/scenarios.ts against the platform as separate processes,
 * on a Redis, PostgreSQL and RabbitMQ this run starts itself (never the machine's servers). Prints
 * one table row per scenario and exits 1 on any loss, double count or broken invariant.
 *
 *   CHAOS_RATE=20        requests offered a second
 *   CHAOS_ONLY=redis     run only the scenarios whose name contains this
 *   BENCH_JSON=path      also write the results as JSON (key chaos)
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { startCluster } from "./cluster.js";
import { formatResults, runScenario, SCENARIOS, type ScenarioResult } from "./scenarios.js";

const RATE = Number(process.env.CHAOS_RATE ?? 20);
const ONLY = process.env.CHAOS_ONLY?.toLowerCase();
const LIMIT_MS = 15 * 60_000;
const say = (line: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

const bound = setTimeout(() => {
  say(`still running after ${LIMIT_MS / 60_000} minutes: giving up`);
  process.exit(1);
}, LIMIT_MS);
bound.unref();

const cluster = await startCluster({ ownPostgresAndRabbit: true, log: say });
const results: ScenarioResult[] = [];
try {
  const chosen = SCENARIOS.filter((s) => !ONLY || s.name.toLowerCase().includes(ONLY));
  for (const [i, scenario] of chosen.entries()) {
    say(`(${i + 1}/${chosen.length}) ${scenario.name}`);
    const result = await runScenario(cluster, scenario, { perSecond: RATE, beforeMs: 3_000, afterMs: 5_000, drainTimeoutMs: 120_000, dailyRequestLimit: 100_000 });
    say(`  ${result.ok ? "held" : "BROKEN"}: ${result.admitted} admitted, ${result.completed} completed, recovery ${result.recoverySeconds ?? "never"} s`);
    results.push(result);
  }
} finally {
  await cluster.close();
}
process.stdout.write(`${formatResults(results)}\n`);
if (process.env.BENCH_JSON) {
  const file = process.env.BENCH_JSON;
  const previous = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>) : {};
  writeFileSync(file, JSON.stringify({ ...previous, chaos: results }, null, 2));
}
process.exit(results.every((r) => r.ok) ? 0 : 1);

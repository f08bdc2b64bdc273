/**
 * The faults, each injected while requests stream in, and the verdict on each: what was admitted,
 * completed and failed, what got lost, stuck or counted twice, the invariants, the 5xx clients saw,
 * and how long admission took to recover once the fault cleared.
 */
import type { Cluster, ComponentName } from "./cluster.js";
import { COMPONENTS } from "./cluster.js";
import { startLoad } from "./load.js";
import { verify, type Verdict } from "./verify.js";

export interface Scenario {
  name: string;
  /** Needs the harness's own PostgreSQL and RabbitMQ. */
  ownServers?: boolean;
  /** Injects the fault; resolves when it has cleared (the server or component is back). */
  inject(cluster: Cluster): Promise<void>;
}

export interface ScenarioResult extends Verdict {
  name: string;
  serverErrors: Record<string, number>;
  unavailableP99Ms: number | null;
  recoverySeconds: number | null;
  seconds: number;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const killed = (name: ComponentName): Scenario => ({
  name: `${name} killed (kill -9)`,
  async inject(cluster) {
    await cluster.kill(name);
    await pause(1_000);
    await cluster.start(name);
  },
});

/** Connections stay open, nothing answers (a dead host, a partition), then the network heals. */
const blackholed = (service: "postgres" | "redis" | "rabbitmq", label: string): Scenario => ({
  name: `${label} blackholed for 3 s`,
  async inject(cluster) {
    cluster.proxies[service].blackhole();
    await pause(3_000);
    cluster.proxies[service].forward();
  },
});

export const SCENARIOS: Scenario[] = [
  { name: "Redis restarted empty", inject: (cluster) => cluster.redis.restartEmpty() },
  killed("worker"),
  killed("collector"),
  killed("gateway"),
  killed("ml-service"),
  {
    name: "RabbitMQ stopped for 10 s",
    ownServers: true,
    async inject(cluster) {
      await cluster.rabbit!.stopNode();
      await pause(10_000);
      await cluster.rabbit!.startNode();
    },
  },
  { name: "PostgreSQL restarted (immediate)", ownServers: true, inject: (cluster) => cluster.postgres!.restartImmediate() },
  blackholed("postgres", "PostgreSQL"),
  blackholed("redis", "Redis"),
  blackholed("rabbitmq", "RabbitMQ"),
  {
    name: "SIGTERM of everything, then start again",
    async inject(cluster) {
      // Reverse start order: the components that feed others stop first.
      for (const name of [...COMPONENTS].reverse()) {
        const code = await cluster.terminate(name);
        if (code !== 0) throw new Error(`${name} exited ${code} on SIGTERM`);
      }
      await cluster.start("ml-service");
      await Promise.all(COMPONENTS.filter((n) => n !== "ml-service").map((n) => cluster.start(n)));
    },
  },
];

export async function runScenario(
  cluster: Cluster,
  scenario: Scenario,
  options: { perSecond: number; beforeMs: number; afterMs: number; drainTimeoutMs: number; dailyRequestLimit: number },
): Promise<ScenarioResult> {
  const started = performance.now();
  const user = await cluster.createUser({ dailyRequests: options.dailyRequestLimit });
  const load = startLoad({ url: cluster.gatewayUrl, authorization: user.authorization, perSecond: options.perSecond, maxLength: 8 });
  await pause(options.beforeMs);
  const faultAt = performance.now();
  await scenario.inject(cluster);
  const clearedAt = performance.now();
  await pause(options.afterMs);
  const result = await load.stop();
  const verdict = await verify(cluster.db, cluster.quota, { userId: user.userId, dailyRequestLimit: options.dailyRequestLimit }, result.admitted, options.drainTimeoutMs);
  return {
    name: scenario.name,
    ...verdict,
    serverErrors: result.serverErrors,
    unavailableP99Ms: result.unavailableP99Ms,
    recoverySeconds: result.recoverySeconds(faultAt, clearedAt),
    seconds: (performance.now() - started) / 1000,
  };
}

export function formatResults(results: ScenarioResult[]): string {
  const lines = [
    "| scenario | admitted | completed | failed by code | stuck | lost | counted twice | invariants | client 5xx | 503 p99 ms | recovery s |",
    "|---|---:|---:|---|---:|---:|---:|---|---|---:|---:|",
  ];
  for (const r of results) {
    const failed = Object.entries(r.failedByCode).map(([c, n]) => `${c} ${n}`).join(", ") || "—";
    const broken = r.invariants.filter((i) => !i.ok).map((i) => `${i.name} (${i.detail})`);
    const errors = Object.entries(r.serverErrors).map(([c, n]) => `${c}: ${n}`).join(", ") || "0";
    const recovery = r.recoverySeconds === null ? "never" : r.recoverySeconds.toFixed(2);
    const p99 = r.unavailableP99Ms === null ? "—" : String(Math.round(r.unavailableP99Ms));
    lines.push(`| ${r.name} | ${r.admitted} | ${r.completed} | ${failed} | ${r.stuck} | ${r.lost} | ${r.countedTwice} | ${broken.length ? `BROKEN: ${broken.join("; ")}` : "hold"} | ${errors} | ${p99} | ${recovery} |`);
  }
  return lines.join("\n");
}

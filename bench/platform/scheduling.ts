/**
 * How the bench's components share the machine's cores. On a cluster each component's pod has a CPU
 * request, and the kubelet gives the pod's cgroup a CFS weight in proportion to it (cpu.shares =
 * request × 1024 / 1000): when pods share a node and its cores are busy, the ML Service (1 CPU
 * requested) gets ten times the CPU of a worker (100m). The bench runs every component on one small
 * machine, so by default (`BENCH_SCHEDULING=equal`) they all get the same weight, which a cluster
 * never gives them. With `BENCH_SCHEDULING=requests` each child starts with the nice value whose CFS
 * weight stands to the ML Service's as the CPU requests in manifests/ do. PostgreSQL, Redis and
 * RabbitMQ are the machine's own servers and keep their weight (the ML Service's).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseAllDocuments } from "yaml";

export type ComponentName = "gateway" | "api-service" | "worker" | "collector" | "ml-service";
export type Scheduling = "equal" | "requests";

const MANIFEST: Record<ComponentName, string> = {
  gateway: "manifests/benthos/api-gateway.yaml",
  "api-service": "manifests/api-service/deployment.yaml",
  worker: "manifests/benthos/ml-worker.yaml",
  collector: "manifests/benthos/results-collector.yaml",
  "ml-service": "manifests/ml-service/deployment.yaml",
};

/** The kernel's CFS weight of each nice value from 0 to 19 (kernel/sched/core.c, sched_prio_to_weight). */
const NICE_WEIGHT = [1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15];

export function schedulingFromEnv(raw = process.env.BENCH_SCHEDULING): Scheduling {
  if (raw === undefined || raw === "" || raw === "equal") return "equal";
  if (raw === "requests") return "requests";
  throw new Error(`BENCH_SCHEDULING must be "equal" or "requests", got ${raw}`);
}

/** "100m" → 0.1, "1" → 1, "1.5" → 1.5. */
export function cpuQuantity(value: unknown): number {
  const text = String(value);
  const match = /^(\d+(?:\.\d+)?)(m?)$/.exec(text);
  if (!match) throw new Error(`unreadable CPU quantity ${text}`);
  return Number(match[1]) / (match[2] === "m" ? 1000 : 1);
}

/** The CPU request of the Deployment's first container in the component's manifest. */
export function cpuRequest(component: ComponentName, root = process.cwd()): number {
  const path = resolve(root, MANIFEST[component]);
  for (const doc of parseAllDocuments(readFileSync(path, "utf8"))) {
    const object = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { resources?: { requests?: { cpu?: unknown } } }[] } } } };
    if (object?.kind !== "Deployment") continue;
    const cpu = object.spec?.template?.spec?.containers?.[0]?.resources?.requests?.cpu;
    if (cpu === undefined) throw new Error(`${path}: the Deployment's container requests no CPU`);
    return cpuQuantity(cpu);
  }
  throw new Error(`${path}: no Deployment`);
}

/** The nice value (0–19) whose weight is nearest `share` × the weight of nice 0. */
export function niceForShare(share: number): number {
  const target = Math.min(1, share) * NICE_WEIGHT[0]!;
  let best = 0;
  for (let nice = 1; nice < NICE_WEIGHT.length; nice++) {
    if (Math.abs(Math.log(NICE_WEIGHT[nice]! / target)) < Math.abs(Math.log(NICE_WEIGHT[best]! / target))) best = nice;
  }
  return best;
}

/** The nice value a child starts with: 0 under `equal`; under `requests`, its request against the ML Service's. */
export function niceFor(component: ComponentName, scheduling: Scheduling, root = process.cwd()): number {
  if (scheduling === "equal" || component === "ml-service") return 0;
  return niceForShare(cpuRequest(component, root) / cpuRequest("ml-service", root));
}

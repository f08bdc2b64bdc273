/** The components as child processes (compiled dist/, as the image runs them): start, stop, sample. */
import { mkdirSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { resolve } from "node:path";
import { niceFor, type ComponentName } from "./scheduling.js";
import { CHILD_START_TIMEOUT_MS, SCHEDULING, CPU_PROF, CPU_PROF_DIR, KEY_PREFIX, QUEUES, RUN, SCHEMA, URLS, log, sleep, ML_TOKEN } from "./settings.js";
import { namedPids, readMemKb } from "./proc.js";

export interface Child {
  name: string;
  proc: ChildProcess;
  url: string;
  output: string[];
  exited: Promise<number | null>;
  peakHwmKb: number;
  peakRssKb: number;
  /** phase → max RSS seen in that phase */
  phaseRssKb: Map<string, number>;
}

export const children = new Map<string, Child>();

let currentPhase = "setup";
/** Names the phase the memory samples are counted in. */
export function setPhase(phase: string): void {
  currentPhase = phase;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolvePort(port));
    });
  });
}

function childEnv(port: number, extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LOG_LEVEL: "warn",
    HOST: "127.0.0.1",
    PORT: String(port),
    DATABASE_URL: databaseUrlForChildren(),
    REDIS_URL: URLS.redis,
    AMQP_URL: URLS.amqp,
    QUEUE_REQUESTS: QUEUES.requests,
    QUEUE_RESULTS: QUEUES.results,
    REDIS_KEY_PREFIX: KEY_PREFIX,
    ANONYMOUS_ACCESS: "false",
    ML_SERVICE_TOKEN: ML_TOKEN,
    ...(process.env.BENCH_CHILD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_CHILD_NODE_OPTIONS } : {}),
    ...extra,
  };
}

function databaseUrlForChildren(): string {
  const sep = URLS.postgres.includes("?") ? "&" : "?";
  return `${URLS.postgres}${sep}options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
}

export async function startChild(
  name: ComponentName,
  extra: Record<string, string> = {},
  readyPath = "/livez",
): Promise<Child> {
  const port = await freePort();
  // The components run as the image runs them: compiled JavaScript (npm run build), not through tsx,
  // whose loader alone holds ~77 MB and would distort the memory figures.
  const args: string[] = [];
  if (CPU_PROF.has(name)) {
    // One folder per child: Node writes one profile per thread (the main thread's is the largest;
    // the loader hooks thread of tsx writes its own).
    const dir = resolve(CPU_PROF_DIR, `${RUN}-${name}`);
    mkdirSync(dir, { recursive: true });
    args.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
  }
  args.push("dist/main.js", name);
  // Started through nice(1), so that every thread of the process has the weight (setpriority on a
  // running process changes only its main thread's).
  const nice = niceFor(name, SCHEDULING);
  const [command, commandArgs] = nice === 0 ? [process.execPath, args] : ["nice", ["-n", String(nice), process.execPath, ...args]];
  const proc = spawn(command, commandArgs, { env: childEnv(port, extra), stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) output.push(line.slice(0, 500));
    if (output.length > 200) output.splice(0, output.length - 200);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const child: Child = {
    name,
    proc,
    url: `http://127.0.0.1:${port}`,
    output,
    exited,
    peakHwmKb: 0,
    peakRssKb: 0,
    phaseRssKb: new Map(),
  };
  children.set(name, child);
  if (proc.pid !== undefined) namedPids.set(proc.pid, name);
  const deadline = Date.now() + CHILD_START_TIMEOUT_MS;
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${name} exited with ${exitCode} while starting:\n${output.slice(-20).join("\n")}`);
    try {
      const response = await fetch(`${child.url}${readyPath}`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${name} did not answer ${readyPath} within ${CHILD_START_TIMEOUT_MS} ms:\n${output.slice(-20).join("\n")}`);
    await sleep(100);
  }
  log(`${name} up (pid ${proc.pid}${nice === 0 ? "" : `, nice ${nice}`}) at ${child.url}`);
  return child;
}

export async function stopChild(child: Child, timeoutMs = 15_000): Promise<number | null> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return child.proc.exitCode;
  child.proc.kill("SIGTERM");
  const code = await Promise.race([child.exited, sleep(timeoutMs).then(() => "timeout" as const)]);
  if (code === "timeout") {
    log(`${child.name} did not stop within ${timeoutMs} ms after SIGTERM; killing it`);
    child.proc.kill("SIGKILL");
    return child.exited;
  }
  return code;
}

export function sampleMemory() {
  for (const child of children.values()) {
    if (child.proc.pid === undefined || child.proc.exitCode !== null) continue;
    const mem = readMemKb(child.proc.pid);
    if (!mem) continue;
    child.peakHwmKb = Math.max(child.peakHwmKb, mem.hwm || 0);
    child.peakRssKb = Math.max(child.peakRssKb, mem.rss || 0);
    child.phaseRssKb.set(currentPhase, Math.max(child.phaseRssKb.get(currentPhase) ?? 0, mem.rss || 0));
  }
}

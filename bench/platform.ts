/**
 * Platform benchmark (`npm run bench`), on the real servers (issue 3, item 9). One run prints:
 *
 *  a) the raw ceiling of the same servers, measured now: per request one Redis Lua reserve
 *     (RedisQuotaStore.reserve) + one INSERT (SqlRequestStore.insert) + one confirmed persistent
 *     publish (RabbitMessageQueue.publish), 64 concurrent, no HTTP, nothing consuming;
 *  b) admission: POST /api/v1/inference over HTTP at 64 keep-alive connections against a gateway
 *     child process, workers not running (the queue fills), and the ratio to (a);
 *  c) status lookups: GET /api/v1/status/:id against an api-service child process, 64 connections;
 *  d) drain: starts ml-service, worker and collector child processes and checks that every admitted
 *     request completes exactly once (rows by status, usage ledger, Redis quota = ledger sum, queues
 *     empty), with a progress line and a time bound;
 *  e) each child process's peak RSS (VmHWM, sampled from /proc) and CPU use per phase.
 *
 * Everything is private to the run: a PostgreSQL schema, queue names and a Redis key prefix, all
 * removed at the end (also on error or Ctrl-C); child processes are stopped with SIGTERM.
 *
 * The load generator is a minimal HTTP/1.1 keep-alive client on raw sockets (one request in flight
 * per connection), so that on a 2-core machine it takes as little CPU from the servers as possible.
 *
 * Settings (environment):
 *   BENCH_SECONDS          measured seconds per phase (default 10)
 *   BENCH_WARMUP_SECONDS   warm-up before each measured phase, not counted (default 1)
 *   BENCH_CONNECTIONS      concurrency of every phase (default 64)
 *   BENCH_DRAIN_TIMEOUT_S  bound on phase (d) (default 150)
 *   BENCH_MAX_LENGTH       max_length of each request (default 4)
 *   BENCH_PROMPT           the prompt of each request (default "Once upon a time")
 *   BENCH_SKIP_DRAIN=1     stop after (c)
 *   BENCH_CPU_PROF=gateway,api-service,...   run those children with --cpu-prof (profiles in
 *                          BENCH_CPU_PROF_DIR, default ./data/bench-profiles)
 *   BENCH_JSON=path        also write the figures as JSON
 *   BENCH_CHILD_NODE_OPTIONS  NODE_OPTIONS for the child processes (e.g. --max-old-space-size=96)
 *   (the components run from dist/, built by the bench first, as the image runs them)
 *   BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_AMQP_URL   the servers (defaults: local test servers)
 *   BENCH_MODEL            GGUF for the ML Service (default ../shared/models/stories260K.gguf)
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { resolve } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { PgSqlClient } from "../src/adapters/postgres/sql-client.js";
import { migrate } from "../src/adapters/postgres/migrate.js";
import { SqlRequestStore } from "../src/adapters/postgres/request-store.js";
import { SqlUserStore } from "../src/adapters/postgres/user-store.js";
import { RedisQuotaStore } from "../src/adapters/redis/quota-store.js";
import { RabbitMessageQueue } from "../src/adapters/rabbitmq/message-queue.js";
import { encodeMessage } from "../src/domain/contracts.js";
import { requestMessageOf } from "../src/domain/request-message.js";
import { generateApiKey } from "../src/domain/api-keys.js";
import { estimateTokens } from "../src/domain/inference-request.js";
import type { QuotaLimits } from "../src/domain/ports.js";

// ---------------------------------------------------------------------------------------- settings

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0, got ${raw}`);
  return value;
};

const SECONDS = num("BENCH_SECONDS", 10);
const WARMUP_SECONDS = num("BENCH_WARMUP_SECONDS", 1);
const CONNECTIONS = Math.max(1, Math.round(num("BENCH_CONNECTIONS", 64)));
const DRAIN_TIMEOUT_S = num("BENCH_DRAIN_TIMEOUT_S", 150);
const MAX_LENGTH = Math.max(1, Math.round(num("BENCH_MAX_LENGTH", 4)));
const SKIP_DRAIN = process.env.BENCH_SKIP_DRAIN === "1" || process.env.BENCH_SKIP_DRAIN === "true";
const CPU_PROF = new Set((process.env.BENCH_CPU_PROF ?? "").split(",").map((s) => s.trim()).filter(Boolean));
const CPU_PROF_DIR = resolve(process.env.BENCH_CPU_PROF_DIR ?? "./data/bench-profiles");
const URLS = {
  postgres: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  redis: process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/0",
  amqp: process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672",
};
const MODEL = resolve(process.env.BENCH_MODEL ?? "../shared/models/stories260K.gguf");
// Short prompt and few tokens: the drain (d) is bound by the model, the admission is not.
const PROMPT = process.env.BENCH_PROMPT ?? "Once upon a time";
const CHILD_START_TIMEOUT_MS = 60_000;
const CLK_TCK = 100; // Linux USER_HZ

const RUN = `bench_${process.pid}_${Date.now().toString(36)}`;
const SCHEMA = RUN.toLowerCase();
const QUEUES = { requests: `${RUN}_req`, results: `${RUN}_res`, ceiling: `${RUN}_ceiling` };
const KEY_PREFIX = `${RUN}:`;
const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "n/a";

// ---------------------------------------------------------------------------------------- stats

interface LoadResult {
  label: string;
  ok: number;
  errors: number;
  /** status code (or error name) → count, for everything that was not the expected answer. */
  failures: Map<string, number>;
  seconds: number;
  latenciesMs: Float64Array;
  cpu?: CpuSnapshotDelta;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

function summarize(r: LoadResult) {
  const sorted = Float64Array.from(r.latenciesMs).sort();
  return {
    label: r.label,
    throughput: r.ok / r.seconds,
    ok: r.ok,
    errors: r.errors,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
    failures: Object.fromEntries(r.failures),
  };
}
type Summary = ReturnType<typeof summarize>;

class Recorder {
  private lat: number[] = [];
  ok = 0;
  errors = 0;
  failures = new Map<string, number>();
  record(ms: number) {
    this.ok++;
    this.lat.push(ms);
  }
  fail(reason: string) {
    this.errors++;
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }
  latencies(): Float64Array {
    return Float64Array.from(this.lat);
  }
}

/**
 * Runs `concurrency` loops of `op` for warm-up + measured seconds. Only operations started inside
 * the measured window count; the window ends when the last of them has finished.
 */
async function closedLoops(
  label: string,
  concurrency: number,
  op: (loop: number) => Promise<string | null>,
  onAny?: (result: string | null) => void,
): Promise<LoadResult> {
  const warmEnd = performance.now() + WARMUP_SECONDS * 1000;
  while (performance.now() < warmEnd) {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, i) => {
        while (performance.now() < warmEnd) onAny?.(await op(i).catch((e: unknown) => errorName(e)));
      }),
    );
  }
  const rec = new Recorder();
  const cpuStart = cpuSnapshot();
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        let failure: string | null;
        try {
          failure = await op(i);
        } catch (error) {
          failure = errorName(error);
        }
        onAny?.(failure);
        if (failure === null) rec.record(performance.now() - t0);
        else rec.fail(failure);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return { label, ok: rec.ok, errors: rec.errors, failures: rec.failures, seconds, latenciesMs: rec.latencies(), cpu: cpuDelta(cpuStart) };
}

function errorName(error: unknown): string {
  if (error && typeof error === "object") {
    const e = error as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof e.code === "string") return e.code;
    if (typeof e.message === "string") return e.message.slice(0, 60);
  }
  return String(error).slice(0, 60);
}

// ---------------------------------------------------------------------------------------- raw HTTP client

/**
 * One keep-alive HTTP/1.1 connection, one request at a time. Parses just the status line,
 * Content-Length and chunked endings; cheap enough that the load generator stays small.
 */
class RawConnection {
  private socket: net.Socket | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: { status: number; body: Buffer }) => void; reject: (e: Error) => void } | null = null;

  constructor(private readonly host: string, private readonly port: number) {}

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.on("error", (err) => this.abort(err));
        socket.on("close", () => this.abort(new Error("connection closed")));
        socket.on("data", (chunk: Buffer) => this.onData(chunk));
        resolve(socket);
      });
      socket.once("error", reject);
    });
  }

  private abort(err: Error) {
    this.socket = null;
    this.buffer = Buffer.alloc(0);
    const w = this.waiting;
    this.waiting = null;
    w?.reject(err);
  }

  private onData(chunk: Buffer) {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf("\r\n\r\n");
    if (headerEnd < 0) return;
    const head = this.buffer.toString("latin1", 0, headerEnd);
    const status = Number(head.slice(9, 12));
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let total: number;
    if (lengthMatch) {
      total = headerEnd + 4 + Number(lengthMatch[1]);
      if (this.buffer.length < total) return;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const endChunk = this.buffer.indexOf("\r\n0\r\n\r\n", headerEnd + 2);
      if (endChunk < 0) return;
      total = endChunk + 7;
    } else {
      total = headerEnd + 4; // no body (204/304)
    }
    const body = this.buffer.subarray(headerEnd + 4, total);
    this.buffer = this.buffer.length === total ? Buffer.alloc(0) : this.buffer.subarray(total);
    const w = this.waiting;
    this.waiting = null;
    w?.resolve({ status, body });
  }

  async request(raw: Buffer): Promise<{ status: number; body: Buffer }> {
    if (!this.socket) this.socket = await this.connect();
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      socket.write(raw);
    });
  }

  close() {
    this.socket?.destroy();
    this.socket = null;
  }
}

function httpRequest(method: string, path: string, headers: Record<string, string>, body?: string): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, "host: 127.0.0.1", "connection: keep-alive"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n${body ?? ""}`);
}

// ---------------------------------------------------------------------------------------- /proc sampling

interface CpuSnapshot {
  at: number;
  total: { busy: number; all: number };
  byGroup: Map<string, number>;
}
interface CpuSnapshotDelta {
  seconds: number;
  /** % of one core, by process group. */
  byGroup: Record<string, number>;
  /** % of the whole machine busy (all cores = 100 × cores). */
  machineBusyPct: number;
  cores: number;
}

const children = new Map<string, Child>();

function groupOf(pid: number, comm: string): string | null {
  if (pid === process.pid) return "bench (load generator)";
  for (const [name, child] of children) if (child.proc.pid === pid) return name;
  if (comm.startsWith("postgres")) return "postgresql";
  if (comm.startsWith("redis-server")) return "redis";
  if (comm === "beam.smp" || comm.startsWith("erl_child") || comm === "epmd" || comm === "inet_gethost") return "rabbitmq";
  return null;
}

function cpuSnapshot(): CpuSnapshot {
  const byGroup = new Map<string, number>();
  let pids: string[] = [];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    /* not Linux */
  }
  let accounted = 0;
  for (const dir of pids) {
    try {
      const stat = readFileSync(`/proc/${dir}/stat`, "latin1");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      accounted += ticks;
      const group = groupOf(Number(dir), comm);
      if (group) byGroup.set(group, (byGroup.get(group) ?? 0) + ticks);
    } catch {
      /* process went away */
    }
  }
  let busy = 0;
  let all = 0;
  try {
    const cpu = readFileSync("/proc/stat", "latin1").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    all = cpu.reduce((a, b) => a + b, 0);
    busy = all - (cpu[3] ?? 0) - (cpu[4] ?? 0);
  } catch {
    /* not Linux */
  }
  void accounted;
  return { at: performance.now(), total: { busy, all }, byGroup };
}

function cpuDelta(start: CpuSnapshot): CpuSnapshotDelta {
  const end = cpuSnapshot();
  const seconds = (end.at - start.at) / 1000;
  const byGroup: Record<string, number> = {};
  let known = 0;
  for (const [group, ticks] of end.byGroup) {
    const pct = ((ticks - (start.byGroup.get(group) ?? 0)) / CLK_TCK / seconds) * 100;
    byGroup[group] = pct;
    known += pct;
  }
  let cores = 1;
  try {
    cores = readFileSync("/proc/stat", "latin1").split("\n").filter((l) => /^cpu\d+ /.test(l)).length || 1;
  } catch {
    /* */
  }
  const busyTicks = end.total.busy - start.total.busy;
  const allTicks = end.total.all - start.total.all;
  const machineBusyPct = allTicks > 0 ? (busyTicks / allTicks) * 100 * cores : Number.NaN;
  byGroup["other processes"] = Math.max(0, machineBusyPct - known);
  return { seconds, byGroup, machineBusyPct, cores };
}

function readMemKb(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    return { rss, hwm };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------- child processes

interface Child {
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

let currentPhase = "setup";

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
    ...(process.env.BENCH_CHILD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_CHILD_NODE_OPTIONS } : {}),
    ...extra,
  };
}

function databaseUrlForChildren(): string {
  const sep = URLS.postgres.includes("?") ? "&" : "?";
  return `${URLS.postgres}${sep}options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;
}

async function startChild(
  name: "gateway" | "api-service" | "worker" | "collector" | "ml-service",
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
  const proc = spawn(process.execPath, args, { env: childEnv(port, extra), stdio: ["ignore", "pipe", "pipe"] });
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
  log(`${name} up (pid ${proc.pid}) at ${child.url}`);
  return child;
}

async function stopChild(child: Child, timeoutMs = 15_000): Promise<number | null> {
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

function sampleMemory() {
  for (const child of children.values()) {
    if (child.proc.pid === undefined || child.proc.exitCode !== null) continue;
    const mem = readMemKb(child.proc.pid);
    if (!mem) continue;
    child.peakHwmKb = Math.max(child.peakHwmKb, mem.hwm || 0);
    child.peakRssKb = Math.max(child.peakRssKb, mem.rss || 0);
    child.phaseRssKb.set(currentPhase, Math.max(child.phaseRssKb.get(currentPhase) ?? 0, mem.rss || 0));
  }
}

// ---------------------------------------------------------------------------------------- setup / cleanup

interface Setup {
  db: PgSqlClient;
  requests: SqlRequestStore;
  users: SqlUserStore;
  redis: Redis;
  quota: RedisQuotaStore;
  userId: string;
  authorization: string;
}

async function setup(): Promise<Setup> {
  const admin = new pg.Client({ connectionString: URLS.postgres });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${SCHEMA}`);
  await admin.end();
  const db = new PgSqlClient({ connectionString: URLS.postgres, schema: SCHEMA, max: 10, applicationName: "ml-inference-bench" });
  await migrate(db);
  const users = new SqlUserStore(db);
  const userId = `bench-${process.pid}`;
  await users.upsertTier({ name: "bench-unlimited", limits: UNLIMITED });
  await users.createUser(userId, "bench-unlimited");
  const key = generateApiKey();
  await users.addApiKey(key.keyId, userId, key.keyHash);
  const redis = new Redis(URLS.redis, { connectionName: "ml-inference-bench" });
  const quota = new RedisQuotaStore({ redis, keyPrefix: KEY_PREFIX });
  return { db, requests: new SqlRequestStore(db), users, redis, quota, userId, authorization: `Bearer ${key.key}` };
}

let cleaned: Promise<void> | undefined;
let state: Partial<Setup> = {};

function cleanup(): Promise<void> {
  return (cleaned ??= (async () => {
    currentPhase = "stop";
    const codes = await Promise.all(
      [...children.values()].map(async (c) => [c.name, await stopChild(c).catch(() => null)] as const),
    );
    const bad = codes.filter(([, code]) => code !== 0);
    if (bad.length > 0) log(`children that did not exit 0 on SIGTERM: ${bad.map(([n, c]) => `${n}=${c}`).join(", ")}`);
    await state.db?.close().catch(() => undefined);
    try {
      const admin = new pg.Client({ connectionString: URLS.postgres });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await admin.end();
    } catch (error) {
      log(`could not drop schema ${SCHEMA}: ${errorName(error)}`);
    }
    try {
      const amqp = await import("amqplib");
      const connection = await amqp.connect(URLS.amqp);
      const channel = await connection.createChannel();
      for (const q of Object.values(QUEUES)) for (const name of [q, `${q}.dead`]) await channel.deleteQueue(name).catch(() => undefined);
      await connection.close().catch(() => undefined);
    } catch (error) {
      log(`could not delete queues: ${errorName(error)}`);
    }
    const redis = state.redis ?? new Redis(URLS.redis);
    try {
      let cursor = "0";
      let deleted = 0;
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${KEY_PREFIX}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) deleted += await redis.unlink(...keys);
      } while (cursor !== "0");
      log(`cleanup: schema ${SCHEMA} dropped, queues deleted, ${deleted} Redis keys removed`);
    } catch (error) {
      log(`could not remove Redis keys: ${errorName(error)}`);
    } finally {
      redis.disconnect();
    }
  })());
}

// ---------------------------------------------------------------------------------------- phases

const requestBody = JSON.stringify({ prompt: PROMPT, max_length: MAX_LENGTH, temperature: 0.8 });

async function phaseCeiling(s: Setup): Promise<LoadResult> {
  currentPhase = "a";
  const mq = await RabbitMessageQueue.connect({ url: URLS.amqp, queues: [QUEUES.ceiling] });
  // Same pool size and a separate connection, like the gateway's own.
  const db = new PgSqlClient({ connectionString: URLS.postgres, schema: SCHEMA, max: 10, applicationName: "ml-inference-bench-ceiling" });
  const requests = new SqlRequestStore(db);
  const redis = new Redis(URLS.redis, { connectionName: "ml-inference-bench-ceiling" });
  const quota = new RedisQuotaStore({ redis, keyPrefix: KEY_PREFIX });
  const userId = "bench-ceiling";
  const params = { maxLength: MAX_LENGTH, temperature: 0.8, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 };
  const tokens = estimateTokens(PROMPT, params);
  try {
    return await closedLoops("a) ceiling: reserve + INSERT + confirmed publish", CONNECTIONS, async () => {
      const requestId = randomUUID();
      const createdAt = new Date();
      const r = await quota.reserve({ userId, requestId, tokens, limits: UNLIMITED, now: createdAt });
      if (!r.ok) return "quota";
      await requests.insert({ requestId, userId, model: "default", prompt: PROMPT, params, estimatedTokens: tokens, window: r.window, createdAt });
      const message = requestMessageOf({ requestId, userId, model: "default", prompt: PROMPT, params, estimatedTokens: tokens, createdAt });
      await mq.publish(QUEUES.ceiling, encodeMessage(message));
      return null;
    });
  } finally {
    await mq.close();
    await redis.quit().catch(() => redis.disconnect());
    // The ceiling's rows must not count in (d).
    await db.query("DELETE FROM inference_requests WHERE user_id = $1", [userId]);
    await db.close();
  }
}

async function phaseAdmission(gateway: Child, s: Setup): Promise<{ result: LoadResult; admitted: number }> {
  currentPhase = "b";
  const { port } = new URL(gateway.url);
  const raw = httpRequest("POST", "/api/v1/inference", { "content-type": "application/json", authorization: s.authorization }, requestBody);
  const connections = Array.from({ length: CONNECTIONS }, () => new RawConnection("127.0.0.1", Number(port)));
  let admitted = 0;
  try {
    const result = await closedLoops(
      "b) admission: POST /api/v1/inference",
      CONNECTIONS,
      async (i) => {
        const response = await connections[i]!.request(raw);
        return response.status === 202 ? null : `HTTP ${response.status} ${response.body.toString("utf8").slice(0, 80)}`;
      },
      (failure) => {
        if (failure === null) admitted++;
      },
    );
    return { result, admitted };
  } finally {
    for (const c of connections) c.close();
  }
}

async function phaseStatus(api: Child, s: Setup): Promise<LoadResult> {
  currentPhase = "c";
  const ids = (
    await s.db.query<{ request_id: string }>("SELECT request_id FROM inference_requests WHERE user_id = $1 ORDER BY random() LIMIT 5000", [s.userId])
  ).rows.map((r) => r.request_id);
  if (ids.length === 0) throw new Error("no admitted requests to look up");
  const raws = ids.map((id) => httpRequest("GET", `/api/v1/status/${id}`, { authorization: s.authorization }));
  const { port } = new URL(api.url);
  const connections = Array.from({ length: CONNECTIONS }, () => new RawConnection("127.0.0.1", Number(port)));
  let next = 0;
  try {
    return await closedLoops("c) status: GET /api/v1/status/:id", CONNECTIONS, async (i) => {
      const raw = raws[next++ % raws.length]!;
      const response = await connections[i]!.request(raw);
      return response.status === 200 ? null : `HTTP ${response.status} ${response.body.toString("utf8").slice(0, 80)}`;
    });
  } finally {
    for (const c of connections) c.close();
  }
}

interface DrainReport {
  admitted: number;
  rows: number;
  byStatus: Record<string, number>;
  failedCodes: Record<string, number>;
  ledgerRows: number;
  ledgerTokens: number;
  redis: { dailyRequests: number; dailyUsed: number; dailyReserved: number; monthlyRequests: number; monthlyUsed: number; monthlyReserved: number };
  queues: Record<string, number>;
  collector: { collected: number; duplicates: number };
  worker: { retried: number };
  seconds: number;
  timedOut: boolean;
  rate: number;
  cpu: CpuSnapshotDelta;
  checks: Array<{ check: string; ok: boolean; detail: string }>;
}

async function countByStatus(s: Setup): Promise<Record<string, number>> {
  const rows = (
    await s.db.query<{ status: string; n: number }>(
      "SELECT status, count(*)::int AS n FROM inference_requests WHERE user_id = $1 GROUP BY status",
      [s.userId],
    )
  ).rows;
  const out: Record<string, number> = { queued: 0, processing: 0, completed: 0, failed: 0 };
  for (const r of rows) out[r.status] = Number(r.n);
  return out;
}

async function scrape(url: string, metric: string): Promise<number> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    let sum = 0;
    for (const line of text.split("\n")) if (line.startsWith(metric) && (line[metric.length] === " " || line[metric.length] === "{")) sum += Number(line.split(" ").pop());
    return sum;
  } catch {
    return Number.NaN;
  }
}

async function phaseDrain(s: Setup, admitted: number): Promise<DrainReport> {
  currentPhase = "d";
  log("starting collector and worker (ml-service is already up)");
  const ml = children.get("ml-service")!;
  const collector = await startChild("collector", { COLLECTOR_PREFETCH: "64" });
  const worker = await startChild("worker", { ML_SERVICE_URL: ml.url, WORKER_PREFETCH: "32", ML_REQUEST_TIMEOUT_MS: "60000" });
  const cpuStart = cpuSnapshot();
  const started = performance.now();
  const deadline = started + DRAIN_TIMEOUT_S * 1000;
  let byStatus = await countByStatus(s);
  let last = { at: started, done: 0 };
  let timedOut = false;
  for (;;) {
    byStatus = await countByStatus(s);
    const done = (byStatus.completed ?? 0) + (byStatus.failed ?? 0);
    const open = (byStatus.queued ?? 0) + (byStatus.processing ?? 0);
    const now = performance.now();
    const rate = ((done - last.done) / (now - last.at)) * 1000;
    if (now - last.at >= 2000 || open === 0) {
      log(
        `drain: completed ${fmt(byStatus.completed ?? 0)} failed ${fmt(byStatus.failed ?? 0)} processing ${fmt(byStatus.processing ?? 0)} queued ${fmt(byStatus.queued ?? 0)} of ${fmt(admitted)} admitted — ${fmt(rate)}/s, ${fmt((now - started) / 1000, 1)} s`,
      );
      last = { at: now, done };
    }
    if (open === 0 && done >= admitted) break;
    if (now > deadline) {
      timedOut = true;
      log(`drain: time bound of ${DRAIN_TIMEOUT_S} s reached with ${open} requests still open`);
      break;
    }
    await sleep(250);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(cpuStart);
  // Settle follows the database commit in the collector: give Redis a moment to catch up.
  // A run may cross midnight UTC (or a month end): sum Redis over every window the ledger names, since
  // each reservation is settled in the day and month it was made in.
  const usageNow = async () => {
    const windows = (
      await s.db.query<{ day: string; month: string }>(
        "SELECT DISTINCT quota_day::text AS day, quota_month AS month FROM inference_requests WHERE user_id = $1",
        [s.userId],
      )
    ).rows;
    const days = [...new Set(windows.map((w) => w.day))];
    const months = [...new Set(windows.map((w) => w.month))];
    const total = { daily: { requests: 0, tokensUsed: 0, tokensReserved: 0 }, monthly: { requests: 0, tokensUsed: 0, tokensReserved: 0 } };
    for (const day of days.length ? days : [new Date().toISOString().slice(0, 10)]) {
      const u = await s.quota.usage(s.userId, new Date(`${day}T12:00:00Z`));
      total.daily.requests += u.daily.requests;
      total.daily.tokensUsed += u.daily.tokensUsed;
      total.daily.tokensReserved += u.daily.tokensReserved;
    }
    for (const month of months.length ? months : [new Date().toISOString().slice(0, 7)]) {
      const u = await s.quota.usage(s.userId, new Date(`${month}-15T12:00:00Z`));
      total.monthly.requests += u.monthly.requests;
      total.monthly.tokensUsed += u.monthly.tokensUsed;
      total.monthly.tokensReserved += u.monthly.tokensReserved;
    }
    return total;
  };
  let usage = await usageNow();
  for (let i = 0; i < 40 && (usage.daily.tokensReserved > 0 || usage.monthly.tokensReserved > 0) && !timedOut; i++) {
    await sleep(250);
    usage = await usageNow();
  }
  const rows = Object.values(byStatus).reduce((a, b) => a + b, 0);
  const ledger = (
    await s.db.query<{ n: number; tokens: number | null; distinct_ids: number }>(
      "SELECT count(*)::int AS n, sum(total_tokens)::bigint AS tokens, count(DISTINCT request_id)::int AS distinct_ids FROM usage_ledger WHERE user_id = $1",
      [s.userId],
    )
  ).rows[0]!;
  const ledgerMismatch = Number(
    (
      await s.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM inference_requests r LEFT JOIN usage_ledger l USING (request_id)
          WHERE r.user_id = $1 AND ((r.status = 'completed') <> (l.request_id IS NOT NULL) OR (l.request_id IS NOT NULL AND l.total_tokens <> r.total_tokens))`,
        [s.userId],
      )
    ).rows[0]?.n ?? 0,
  );
  const failedCodes = Object.fromEntries(
    (
      await s.db.query<{ code: string; n: number }>(
        "SELECT coalesce(error_code, '?') AS code, count(*)::int AS n FROM inference_requests WHERE user_id = $1 AND status = 'failed' GROUP BY 1",
        [s.userId],
      )
    ).rows.map((r) => [r.code, Number(r.n)]),
  );
  const mq = await RabbitMessageQueue.connect({ url: URLS.amqp, queues: [] });
  const queues: Record<string, number> = {};
  try {
    for (const q of [QUEUES.requests, QUEUES.results]) {
      for (const name of [q, `${q}.dead`]) queues[name.slice(RUN.length + 1)] = (await mq.stats(name).catch(() => ({ ready: Number.NaN }))).ready;
    }
  } finally {
    await mq.close();
  }
  const collectorStats = { collected: await scrape(collector.url, "results_collected_total"), duplicates: await scrape(collector.url, "results_duplicates_total") };
  const workerStats = { retried: await scrape(worker.url, "messages_retried_total") };
  const ledgerTokens = Number(ledger.tokens ?? 0);
  const completed = byStatus.completed ?? 0;
  const redis = {
    dailyRequests: usage.daily.requests,
    dailyUsed: usage.daily.tokensUsed,
    dailyReserved: usage.daily.tokensReserved,
    monthlyRequests: usage.monthly.requests,
    monthlyUsed: usage.monthly.tokensUsed,
    monthlyReserved: usage.monthly.tokensReserved,
  };
  const checks = [
    { check: "rows stored = 202 answers", ok: rows === admitted, detail: `${fmt(rows)} rows, ${fmt(admitted)} admitted` },
    { check: "none left queued/processing", ok: (byStatus.queued ?? 0) + (byStatus.processing ?? 0) === 0, detail: `queued ${byStatus.queued}, processing ${byStatus.processing}` },
    { check: "all completed, none failed", ok: completed === admitted && (byStatus.failed ?? 0) === 0, detail: `completed ${fmt(completed)}, failed ${fmt(byStatus.failed ?? 0)} ${JSON.stringify(failedCodes)}` },
    { check: "ledger rows = completed (one per request)", ok: Number(ledger.n) === completed && Number(ledger.distinct_ids) === Number(ledger.n) && ledgerMismatch === 0, detail: `${fmt(Number(ledger.n))} ledger rows, ${ledgerMismatch} mismatched` },
    { check: "collector stored each outcome once", ok: collectorStats.collected === rows, detail: `results_collected_total ${fmt(collectorStats.collected)}, duplicates ignored ${fmt(collectorStats.duplicates)}` },
    { check: "Redis used tokens = ledger sum (day)", ok: redis.dailyUsed === ledgerTokens && redis.dailyReserved === 0, detail: `used ${fmt(redis.dailyUsed)} vs ledger ${fmt(ledgerTokens)}, reserved ${fmt(redis.dailyReserved)}` },
    { check: "Redis used tokens = ledger sum (month)", ok: redis.monthlyUsed === ledgerTokens && redis.monthlyReserved === 0, detail: `used ${fmt(redis.monthlyUsed)} vs ledger ${fmt(ledgerTokens)}, reserved ${fmt(redis.monthlyReserved)}` },
    { check: "Redis request count = completed", ok: redis.dailyRequests === completed, detail: `day ${fmt(redis.dailyRequests)}, month ${fmt(redis.monthlyRequests)}` },
    { check: "queues empty (main and dead-letter)", ok: Object.values(queues).every((n) => n === 0), detail: Object.entries(queues).map(([k, v]) => `${k}=${v}`).join(" ") },
  ];
  return {
    admitted,
    rows,
    byStatus,
    failedCodes,
    ledgerRows: Number(ledger.n),
    ledgerTokens,
    redis,
    queues,
    collector: collectorStats,
    worker: workerStats,
    seconds,
    timedOut,
    rate: completed / seconds,
    cpu,
    checks,
  };
}

// ---------------------------------------------------------------------------------------- output

function loadTable(rows: Summary[]): string {
  const out = ["| phase | ok | errors | throughput (/s) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |", "|---|--:|--:|--:|--:|--:|--:|--:|"];
  for (const r of rows) {
    out.push(`| ${r.label} | ${fmt(r.ok)} | ${fmt(r.errors)} | ${fmt(r.throughput)} | ${fmt(r.p50, 2)} | ${fmt(r.p90, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.max, 1)} |`);
  }
  return out.join("\n");
}

function cpuTable(phases: Array<[string, CpuSnapshotDelta | undefined, number]>): string {
  const groups = new Set<string>();
  for (const [, d] of phases) if (d) for (const g of Object.keys(d.byGroup)) groups.add(g);
  const order = [...groups].sort((a, b) => (a === "other processes" ? 1 : b === "other processes" ? -1 : a.localeCompare(b)));
  const head = `| process (CPU % of one core) | ${phases.map(([p]) => p).join(" | ")} |`;
  const out = [head, `|---|${phases.map(() => "--:").join("|")}|`];
  for (const g of order) out.push(`| ${g} | ${phases.map(([, d]) => (d && d.byGroup[g] !== undefined ? fmt(d.byGroup[g]!) : "")).join(" | ")} |`);
  out.push(`| **machine busy** (of ${phases[0]?.[1]?.cores ?? "?"}00) | ${phases.map(([, d]) => (d ? fmt(d.machineBusyPct) : "")).join(" | ")} |`);
  // CPU time per request is steadier than throughput when other work shares the machine.
  out.push(`| | ${phases.map(() => "").join(" | ")} |`);
  out.push(`| **CPU µs per request** (by process) | ${phases.map(() => "").join(" | ")} |`);
  const perRequest = (d: CpuSnapshotDelta | undefined, done: number, g: string) =>
    d && done > 0 && d.byGroup[g] !== undefined ? (d.byGroup[g]! / 100) * d.seconds * 1e6 / done : Number.NaN;
  for (const g of order.filter((g) => g !== "other processes")) {
    out.push(`| ${g} | ${phases.map(([, d, done]) => { const v = perRequest(d, done, g); return Number.isFinite(v) && v >= 0.5 ? fmt(v) : ""; }).join(" | ")} |`);
  }
  out.push(`| **total, these processes** | ${phases.map(([, d, done]) => { let t = 0; for (const g of order) if (g !== "other processes") { const v = perRequest(d, done, g); if (Number.isFinite(v)) t += v; } return d && done > 0 ? `**${fmt(t)}**` : ""; }).join(" | ")} |`);
  return out.join("\n");
}

/** CPU µs per request of the known processes (servers, components, load generator), others left out. */
function cpuPerRequest(r: LoadResult): number {
  if (!r.cpu || r.ok === 0) return Number.NaN;
  let pct = 0;
  for (const [g, v] of Object.entries(r.cpu.byGroup)) if (g !== "other processes") pct += v;
  return ((pct / 100) * r.cpu.seconds * 1e6) / r.ok;
}

function memoryTable(): string {
  const phases = ["setup", "a", "b", "c", "d"];
  const out = [
    `| component (pid) | peak RSS (VmHWM, MB) | ${phases.map((p) => `max RSS in ${p}`).join(" | ")} | goal ≤ 200 MB |`,
    `|---|--:|${phases.map(() => "--:").join("|")}|:-:|`,
  ];
  for (const c of children.values()) {
    const mb = (kb: number | undefined) => (kb ? fmt(kb / 1024) : "");
    const goal = c.name === "ml-service" ? "(exempt)" : c.peakHwmKb / 1024 <= 200 ? "yes" : "**no**";
    out.push(`| ${c.name} (${c.proc.pid}) | ${mb(c.peakHwmKb)} | ${phases.map((p) => mb(c.phaseRssKb.get(p))).join(" | ")} | ${goal} |`);
  }
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------- main

async function main(): Promise<number> {
  if (!existsSync(MODEL) && !SKIP_DRAIN) throw new Error(`model not found at ${MODEL} (BENCH_MODEL); set BENCH_SKIP_DRAIN=1 to stop after (c)`);
  log(`run ${RUN}: schema ${SCHEMA}, queues ${QUEUES.requests}/${QUEUES.results}, key prefix ${KEY_PREFIX}`);
  log(`${SECONDS} s per phase (+${WARMUP_SECONDS} s warm-up), ${CONNECTIONS} connections, max_length ${MAX_LENGTH}`);
  const runStarted = performance.now();
  log("building dist/ (npm run build)");
  execFileSync("npm", ["run", "build", "--silent"], { stdio: ["ignore", "ignore", "inherit"] });
  const s = await setup();
  state = s;
  const sampler = setInterval(sampleMemory, 200);
  sampler.unref();
  try {
    log("starting gateway, api-service" + (SKIP_DRAIN ? "" : " and ml-service (idle until d)"));
    const [gateway, api] = await Promise.all([
      startChild("gateway"),
      startChild("api-service"),
      SKIP_DRAIN ? Promise.resolve(undefined) : startChild("ml-service", { MODEL, ML_BATCH_SEQUENCES: "16", ML_QUEUE_LIMIT: "256", ML_CONTEXT_SIZE: "2048" }, "/health"),
    ]);

    log("a) raw ceiling (in this process, no HTTP)");
    const ceiling = await phaseCeiling(s);
    const a = summarize(ceiling);
    log(`a) ${fmt(a.throughput)}/s, p50 ${fmt(a.p50, 2)} ms, p99 ${fmt(a.p99, 2)} ms`);

    log("b) admission over HTTP (workers not running)");
    const admission = await phaseAdmission(gateway, s);
    const b = summarize(admission.result);
    log(`b) ${fmt(b.throughput)}/s, p50 ${fmt(b.p50, 2)} ms, p99 ${fmt(b.p99, 2)} ms — ${fmt((b.throughput / a.throughput) * 100, 1)} % of (a)`);

    log("c) status lookups");
    const status = await phaseStatus(api, s);
    const c = summarize(status);
    log(`c) ${fmt(c.throughput)}/s, p50 ${fmt(c.p50, 2)} ms, p99 ${fmt(c.p99, 2)} ms`);

    let drain: DrainReport | undefined;
    if (!SKIP_DRAIN) {
      log("d) drain: every admitted request must complete exactly once");
      drain = await phaseDrain(s, admission.admitted);
    }
    sampleMemory();

    const ratio = b.throughput / a.throughput;
    const cpuRatio = cpuPerRequest(ceiling) / cpuPerRequest(admission.result);
    const lines: string[] = [];
    lines.push(`\n## Platform benchmark — ${new Date().toISOString()}`);
    lines.push(`\n${CONNECTIONS} concurrent, ${SECONDS} s measured per phase after ${WARMUP_SECONDS} s warm-up; Node ${process.version}; ${cpuDeltaCores()} cores.\n`);
    lines.push("### Throughput and latency\n");
    lines.push(loadTable([a, b, c]));
    const failures = [a, b, c].filter((r) => r.errors > 0);
    if (failures.length > 0) {
      lines.push("\nErrors:");
      for (const r of failures) lines.push(`- ${r.label}: ${JSON.stringify(r.failures)}`);
    }
    lines.push(`\nAdmission / ceiling: **${fmt(ratio * 100, 1)} %** (${fmt(b.throughput)} vs ${fmt(a.throughput)} per s).`);
    lines.push(
      `By CPU time per request of the processes involved (steadier when other work shares the machine): ceiling ${fmt(cpuPerRequest(ceiling))} µs, admission ${fmt(cpuPerRequest(admission.result))} µs → **${fmt(cpuRatio * 100, 1)} %**` +
        ` (what the throughput ratio would be if both were CPU-bound on an otherwise idle machine).`,
    );
    lines.push("\n### CPU by process during each phase\n");
    lines.push(
      cpuTable([
        ["a) ceiling", ceiling.cpu, ceiling.ok],
        ["b) admission", admission.result.cpu, admission.result.ok],
        ["c) status", status.cpu, status.ok],
        ["d) drain", drain?.cpu, drain ? drain.rows : 0],
      ]),
    );
    if (drain) {
      lines.push("\n### Drain (workers resumed)\n");
      lines.push(`${fmt(drain.rows)} requests drained in ${fmt(drain.seconds, 1)} s (${fmt(drain.rate)}/s end to end${drain.timedOut ? `, **time bound of ${DRAIN_TIMEOUT_S} s reached**` : ""}); worker retries ${fmt(drain.worker.retried)}.\n`);
      lines.push("| check | ok | detail |\n|---|:-:|---|");
      for (const ch of drain.checks) lines.push(`| ${ch.check} | ${ch.ok ? "yes" : "**NO**"} | ${ch.detail} |`);
    }
    lines.push("\n### Peak memory per component\n");
    lines.push(memoryTable());

    const yes = (ok: boolean) => (ok ? "yes" : "**no**");
    const gatewayMb = (children.get("gateway")?.peakHwmKb ?? 0) / 1024;
    const maxOtherMb = Math.max(...[...children.values()].filter((ch) => ch.name !== "ml-service").map((ch) => ch.peakHwmKb / 1024));
    lines.push("\n### Summary\n");
    lines.push("| figure | measured | target | met |\n|---|---|---|:-:|");
    lines.push(`| a) raw ceiling (Lua reserve + INSERT + confirmed publish) | ${fmt(a.throughput)}/s, p50 ${fmt(a.p50, 1)} ms, p99 ${fmt(a.p99, 1)} ms | — | |`);
    lines.push(`| b) admission, POST /api/v1/inference | ${fmt(b.throughput)}/s, p50 ${fmt(b.p50, 1)} ms, p99 ${fmt(b.p99, 1)} ms | ≥ 70 % of (a), p99 ≤ 50 ms | ${yes(ratio >= 0.7 && b.p99 <= 50 && b.errors === 0)} |`);
    lines.push(`| b / a | ${fmt(ratio * 100, 1)} % (by CPU per request: ${fmt(cpuRatio * 100, 1)} %) | ≥ 70 % | ${yes(ratio >= 0.7)} |`);
    lines.push(`| c) status lookups | ${fmt(c.throughput)}/s, p50 ${fmt(c.p50, 1)} ms, p99 ${fmt(c.p99, 1)} ms | ≥ 5,000/s, p99 ≤ 10 ms | ${yes(c.throughput >= 5000 && c.p99 <= 10 && c.errors === 0)} |`);
    if (drain) lines.push(`| d) every admitted request completed exactly once | ${fmt(drain.byStatus.completed ?? 0)} of ${fmt(drain.admitted)} in ${fmt(drain.seconds, 1)} s | all, once | ${yes(drain.checks.every((ch) => ch.ok))} |`);
    lines.push(`| e) peak RSS, components other than ml-service | max ${fmt(maxOtherMb)} MB (gateway ${fmt(gatewayMb)} MB) | ≤ 200 MB each | ${yes(maxOtherMb <= 200)} |`);
    lines.push(`\nWhole run: ${fmt((performance.now() - runStarted) / 1000, 1)} s.`);
    process.stdout.write(`${lines.join("\n")}\n`);

    if (process.env.BENCH_JSON) {
      writeFileSync(
        process.env.BENCH_JSON,
        JSON.stringify(
          {
            run: RUN,
            at: new Date().toISOString(),
            settings: { seconds: SECONDS, warmup: WARMUP_SECONDS, connections: CONNECTIONS, maxLength: MAX_LENGTH },
            ceiling: a,
            admission: b,
            ratio,
            cpuRatio,
            status: c,
            cpu: { a: ceiling.cpu, b: admission.result.cpu, c: status.cpu, d: drain?.cpu },
            drain: drain && { ...drain, cpu: undefined },
            memoryMb: Object.fromEntries([...children.values()].map((ch) => [ch.name, { peakHwm: ch.peakHwmKb / 1024, byPhase: Object.fromEntries([...ch.phaseRssKb].map(([p, kb]) => [p, kb / 1024])) }])),
          },
          null,
          2,
        ),
      );
    }
    return drain && !drain.checks.every((ch) => ch.ok) ? 1 : 0;
  } catch (error) {
    for (const c of children.values()) {
      if (c.output.length > 0) log(`last output of ${c.name}:\n${c.output.slice(-15).join("\n")}`);
    }
    throw error;
  } finally {
    clearInterval(sampler);
    log("stopping child processes and cleaning up");
    await cleanup();
  }
}

function cpuDeltaCores(): number {
  try {
    return readFileSync("/proc/stat", "latin1").split("\n").filter((l) => /^cpu\d+ /.test(l)).length || 1;
  } catch {
    return 1;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    log(`failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    await cleanup().catch(() => undefined);
    process.exit(1);
  },
);

/** The bench's settings (environment, see platform.ts), the run's private names, and small helpers. */
import { resolve } from "node:path";
import type { QuotaLimits } from "../../src/domain/ports.js";
import { schedulingFromEnv } from "./scheduling.js";

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0, got ${raw}`);
  return value;
};

export const SECONDS = num("BENCH_SECONDS", 10);
export const WARMUP_SECONDS = num("BENCH_WARMUP_SECONDS", 1);
export const CONNECTIONS = Math.max(1, Math.round(num("BENCH_CONNECTIONS", 64)));
export const DRAIN_TIMEOUT_S = num("BENCH_DRAIN_TIMEOUT_S", 150);
export const MAX_LENGTH = Math.max(1, Math.round(num("BENCH_MAX_LENGTH", 4)));
export const SKIP_DRAIN = process.env.BENCH_SKIP_DRAIN === "1" || process.env.BENCH_SKIP_DRAIN === "true";
export const SCHEDULING = schedulingFromEnv();
export const CPU_PROF = new Set((process.env.BENCH_CPU_PROF ?? "").split(",").map((s) => s.trim()).filter(Boolean));
export const CPU_PROF_DIR = resolve(process.env.BENCH_CPU_PROF_DIR ?? "./data/bench-profiles");
export const URLS = {
  postgres: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  redis: process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379/0",
  amqp: process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672",
};
export const MODEL = resolve(process.env.BENCH_MODEL ?? "../shared/models/stories260K.gguf");
// Short prompt and few tokens: the drain (d) is bound by the model, the admission is not.
export const PROMPT = process.env.BENCH_PROMPT ?? "Once upon a time";
// Concurrency of the drain: the worker's model calls at once (WORKER_CONCURRENCY; it holds twice as
// many messages, so a call starts as soon as one ends), which is also the concurrency of (f), the
// ML Service alone, so the two are compared like for like.
export const WORKER_PREFETCH = Math.max(1, Math.round(num("BENCH_WORKER_PREFETCH", 32)));
export const COLLECTOR_PREFETCH = Math.max(1, Math.round(num("BENCH_COLLECTOR_PREFETCH", 128)));
// Phase (g), streaming: tokens per stream, the larger concurrency (the smaller is always 1), the
// measured seconds per leg and a floor on the streams per leg so that p99 is not just the maximum.
export const STREAM_TOKENS = Math.max(1, Math.round(num("BENCH_STREAM_TOKENS", 64)));
export const STREAM_CONCURRENCY = Math.max(1, Math.round(num("BENCH_STREAM_CONCURRENCY", 16)));
export const STREAM_SECONDS = num("BENCH_STREAM_SECONDS", SECONDS);
export const STREAM_MIN_STREAMS = Math.round(num("BENCH_STREAM_MIN_STREAMS", 100));
// Phase (h), the queue estimate: clients at once, each waiting for its request (polling its status)
// before the next, more than the worker's call slots, so a backlog waits. Two loads: a deep backlog
// (waits of some 0.4 s, what an estimate is for: deadlines are in seconds), whose error is
// `queue_estimate_median_error`, and a shallow one (waits of some 0.1 s, the model's batch steps a
// large part of each) as h2.
export const ESTIMATE_CLIENTS = Math.max(1, Math.round(num("BENCH_ESTIMATE_CLIENTS", 256)));
export const ESTIMATE_POLL_MS = Math.max(1, num("BENCH_ESTIMATE_POLL_MS", 50));
export const ESTIMATE_SHALLOW_CLIENTS = Math.max(0, Math.round(num("BENCH_ESTIMATE_SHALLOW_CLIENTS", 96)));
export const ESTIMATE_SHALLOW_POLL_MS = Math.max(1, num("BENCH_ESTIMATE_SHALLOW_POLL_MS", 20));
export const ESTIMATE_WARMUP_SECONDS = num("BENCH_ESTIMATE_WARMUP_S", 6);
// Phase (i), batches: lines of the batch (and requests of its one-by-one twin), and the bound on each leg.
// Batch lines in flight (admitted, not yet stored): as many as the worker holds (it takes twice
// WORKER_PREFETCH). More (96) did not raise the batch's rate on 2 cores (the machine was busy) and
// doubled another tenant's interactive wait during it (p99 117–133 ms against 49–65 ms).
export const BATCH_DISPATCH_CONCURRENCY = Math.max(1, Math.round(num("BENCH_BATCH_DISPATCH_CONCURRENCY", 2 * WORKER_PREFETCH)));
export const BATCH_LINES = Math.max(1, Math.round(num("BENCH_BATCH_LINES", 10_000)));
export const BATCH_TIMEOUT_S = num("BENCH_BATCH_TIMEOUT_S", 240);
export const SKIP_BATCH = process.env.BENCH_SKIP_BATCH === "1" || process.env.BENCH_SKIP_BATCH === "true";
export const SKIP_STREAMING = process.env.BENCH_SKIP_STREAMING === "1" || process.env.BENCH_SKIP_STREAMING === "true";
export const CHILD_START_TIMEOUT_MS = 60_000;
export const CLK_TCK = 100; // Linux USER_HZ

export const RUN = `bench_${process.pid}_${Date.now().toString(36)}`;
export const SCHEMA = RUN.toLowerCase();
export const QUEUES = { requests: `${RUN}_req`, results: `${RUN}_res`, ceiling: `${RUN}_ceiling` };
export const KEY_PREFIX = `${RUN}:`;
export const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "n/a";
/** The ML Service's internal token for this run: the worker sends it, phase (f) too. */
export const ML_TOKEN = `bench-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;

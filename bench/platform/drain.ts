/** Phase (d): workers resumed; every admitted request must complete exactly once. */
import { RabbitMessageQueue } from "../../src/adapters/rabbitmq/message-queue.js";
import { COLLECTOR_PREFETCH, DRAIN_TIMEOUT_S, QUEUES, RUN, URLS, WORKER_PREFETCH, fmt, log, sleep } from "./settings.js";
import { children, setPhase, startChild } from "./children.js";
import { cpuDelta, cpuSnapshot, type CpuSnapshotDelta } from "./proc.js";
import type { Setup } from "./setup.js";

export interface DrainReport {
  admitted: number;
  rows: number;
  byStatus: Record<string, number>;
  failedCodes: Record<string, number>;
  ledgerRows: number;
  ledgerTokens: number;
  redis: { dailyRequests: number; dailyUsed: number; dailyReserved: number; monthlyRequests: number; monthlyUsed: number; monthlyReserved: number };
  queues: Record<string, number>;
  collector: { collected: number; duplicates: number };
  worker: { retried: number; resultsMessages: number };
  /** Little's law over the drain: mean calls in flight = summed call time ÷ elapsed time, per side. */
  inFlight: { workerCalls: number; workerCallMs: number; mlRequests: number; mlRequestMs: number };
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

export async function scrape(url: string, metric: string): Promise<number> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    let sum = 0;
    for (const line of text.split("\n")) if (line.startsWith(metric) && (line[metric.length] === " " || line[metric.length] === "{")) sum += Number(line.split(" ").pop());
    return sum;
  } catch {
    return Number.NaN;
  }
}

export async function phaseDrain(s: Setup, admitted: number): Promise<DrainReport> {
  setPhase("d");
  log("starting collector and worker (ml-service is already up)");
  const ml = children.get("ml-service")!;
  const collector = await startChild("collector", { COLLECTOR_PREFETCH: String(COLLECTOR_PREFETCH) });
  const worker = await startChild("worker", { ML_SERVICE_URL: ml.url, WORKER_PREFETCH: String(2 * WORKER_PREFETCH), WORKER_CONCURRENCY: String(WORKER_PREFETCH), ML_REQUEST_TIMEOUT_MS: "60000" });
  const mlStart = { sum: await scrape(ml.url, "ml_processing_seconds_sum"), count: await scrape(ml.url, "ml_processing_seconds_count") };
  const cpuStart = cpuSnapshot();
  const started = performance.now();
  const deadline = started + DRAIN_TIMEOUT_S * 1000;
  // Progress from the collector's own count (a metrics scrape), not from the database: a GROUP BY
  // over the run's rows every 250 ms cost PostgreSQL about 40 µs per drained request, which the
  // platform's CPU figure would carry. The database is read once the collector reports all stored.
  let byStatus: Record<string, number> = {};
  let last = { at: started, done: 0 };
  let timedOut = false;
  for (;;) {
    const collected = await scrape(collector.url, "results_collected_total");
    const now = performance.now();
    const done = Number.isNaN(collected) ? 0 : collected;
    if (done >= admitted) {
      byStatus = await countByStatus(s);
      if ((byStatus.queued ?? 0) + (byStatus.processing ?? 0) === 0) break;
    }
    if (now - last.at >= 2000) {
      const rate = ((done - last.done) / (now - last.at)) * 1000;
      log(`drain: stored ${fmt(done)} of ${fmt(admitted)} admitted — ${fmt(rate)}/s, ${fmt((now - started) / 1000, 1)} s`);
      last = { at: now, done };
    }
    if (now > deadline) {
      timedOut = true;
      byStatus = await countByStatus(s);
      log(`drain: time bound of ${DRAIN_TIMEOUT_S} s reached with ${fmt((byStatus.queued ?? 0) + (byStatus.processing ?? 0))} requests still open`);
      break;
    }
    await sleep(250);
  }
  log(`drain: completed ${fmt(byStatus.completed ?? 0)} failed ${fmt(byStatus.failed ?? 0)} queued ${fmt(byStatus.queued ?? 0)} of ${fmt(admitted)} admitted, ${fmt((performance.now() - started) / 1000, 1)} s`);
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(cpuStart);
  const callSum = await scrape(worker.url, "worker_model_call_seconds_sum");
  const callCount = await scrape(worker.url, "worker_model_call_seconds_count");
  const mlSum = (await scrape(ml.url, "ml_processing_seconds_sum")) - mlStart.sum;
  const mlCount = (await scrape(ml.url, "ml_processing_seconds_count")) - mlStart.count;
  const inFlight = { workerCalls: callSum / seconds, workerCallMs: (callSum / callCount) * 1000, mlRequests: mlSum / seconds, mlRequestMs: (mlSum / mlCount) * 1000 };
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
  const workerStats = { retried: await scrape(worker.url, "messages_retried_total"), resultsMessages: await scrape(worker.url, "messages_published_total") };
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
    inFlight,
    seconds,
    timedOut,
    rate: completed / seconds,
    cpu,
    checks,
  };
}

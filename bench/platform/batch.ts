/**
 * Phase (i), batches (issue 9, item 8), with ml-service, worker and collector running:
 *  1. idle: a second tenant's interactive requests one after the other on the idle platform, for
 *     their queue wait (stored started_at − created_at);
 *  2. singles: BATCH_LINES requests through POST /api/v1/inference at CONNECTIONS connections, for
 *     their completion rate: requests ÷ (the last one's completed_at − the first one's created_at);
 *  3. batch: the same requests as one batch (`/v1/completions`, the same prompt, max_tokens and
 *     temperature), uploaded with POST /v1/files and created with POST /v1/batches, from the batch's
 *     creation to its stored completion, the output file written; then (2) again, as another user.
 *     Lines per second ÷ the mean rate of the two (2)s is `batch_vs_single_ratio`: the model's own
 *     speed on this machine drifts by a fifth within a minute, and singles measured on one side
 *     only carried that drift into the ratio (1.06 and 0.78 in two runs of the same code). Nothing
 *     else runs meanwhile;
 *  4. a second batch of half as many lines while the second tenant sends interactive requests as in
 *     (1): their p99 wait is `interactive_wait_p99_during_batch_ms`. (Run apart from (3), so that
 *     the interactive tenant's work does not count against the batch in the ratio.)
 * Each output file must hold every custom_id exactly once, each answered 200.
 * Each tenant is a user of its own, so each leg's rows are counted by user.
 */
import { generateApiKey } from "../../src/domain/api-keys.js";
import { BATCH_LINES, BATCH_TIMEOUT_S, CONNECTIONS, MAX_LENGTH, PROMPT, log, sleep } from "./settings.js";
import { setPhase, type Child } from "./children.js";
import { cpuDelta, cpuSnapshot, type CpuSnapshotDelta } from "./proc.js";
import { requestBody } from "./phases.js";
import { RawConnection, httpRequest, pollUntilFinal } from "./raw-http.js";
import type { Setup } from "./setup.js";

export interface BatchReport {
  lines: number;
  /** The mean of the singles before and after the batch. */
  singlesPerSecond: number;
  singlesBeforePerSecond: number;
  singlesAfterPerSecond: number;
  batchLinesPerSecond: number;
  batchVsSingleRatio: number;
  idleWaitP99Ms: number;
  interactiveDuringBatch: number;
  interactiveWaitP50DuringBatchMs: number;
  interactiveWaitP99DuringBatchMs: number;
  /** Every custom_id once in the output, each 200, none in an error file. */
  exactlyOnce: boolean;
  singlesCpu: CpuSnapshotDelta;
  batchCpu: CpuSnapshotDelta;
  /** Admissions of the singles legs answered 503 and sent again after a second. */
  singlesRetried503: number;
}

const FINAL = "('completed', 'failed', 'cancelled')";

const nearestRank = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : (sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number);
};

async function tenant(s: Setup, name: string): Promise<{ userId: string; authorization: string }> {
  const userId = `${s.userId}-${name}`;
  await s.users.createUser(userId, "bench-unlimited");
  const key = generateApiKey();
  await s.users.addApiKey(key.keyId, userId, key.keyHash);
  return { userId, authorization: `Bearer ${key.key}` };
}

async function finalCount(s: Setup, userId: string): Promise<number> {
  const { rows } = await s.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM inference_requests WHERE user_id = $1 AND status IN ${FINAL}`, [userId]);
  return Number(rows[0]?.n ?? 0);
}

/** One interactive request after the other until `until()` says stop; returns their request ids. */
async function interactiveLoop(gateway: Child, api: Child, authorization: string, until: () => boolean): Promise<string[]> {
  const g = new RawConnection("127.0.0.1", Number(new URL(gateway.url).port));
  const a = new RawConnection("127.0.0.1", Number(new URL(api.url).port));
  const submit = httpRequest("POST", "/api/v1/inference", { "content-type": "application/json", authorization }, requestBody);
  const ids: string[] = [];
  try {
    while (!until()) {
      const answer = await g.request(submit);
      if (answer.status !== 202) throw new Error(`interactive admission answered ${answer.status}`);
      const id = (JSON.parse(answer.body.toString("utf8")) as { request_id: string }).request_id;
      ids.push(id);
      await pollUntilFinal(a, id, authorization);
    }
  } finally {
    g.close();
    a.close();
  }
  return ids;
}

async function waitsOf(s: Setup, ids: string[]): Promise<number[]> {
  const { rows } = await s.db.query<{ wait_ms: number }>(
    "SELECT extract(epoch FROM (started_at - created_at)) * 1000 AS wait_ms FROM inference_requests WHERE request_id = ANY($1::uuid[]) AND started_at IS NOT NULL",
    [ids],
  );
  return rows.map((r) => Number(r.wait_ms));
}

/** Admissions the singles legs retried after a 503 (reported: none on a quiet run). */
let retried503 = 0;

async function singles(s: Setup, gateway: Child, authorization: string, userId: string): Promise<number> {
  const submit = httpRequest("POST", "/api/v1/inference", { "content-type": "application/json", authorization }, requestBody);
  let left = BATCH_LINES;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const c = new RawConnection("127.0.0.1", Number(new URL(gateway.url).port));
      try {
        while (left > 0) {
          left--;
          // A 503 (a backing service slower than its timeout on this loaded machine) is retried
          // after its Retry-After, as any client would; a run should not end on one.
          for (let attempt = 1; ; attempt++) {
            const answer = await c.request(submit);
            if (answer.status === 202) break;
            if (answer.status !== 503 || attempt === 5) throw new Error(`singles: admission answered ${answer.status}: ${answer.body.toString("utf8").slice(0, 200)}`);
            retried503++;
            await sleep(1000);
          }
        }
      } finally {
        c.close();
      }
    }),
  );
  await until(`singles to complete`, async () => (await finalCount(s, userId)) >= BATCH_LINES);
  const { rows } = await s.db.query<{ seconds: number }>(
    "SELECT extract(epoch FROM (max(completed_at) - min(created_at))) AS seconds FROM inference_requests WHERE user_id = $1",
    [userId],
  );
  return BATCH_LINES / Number(rows[0]?.seconds);
}

/** Polls `condition` every `everyMs` (a client polling a batch every half second, say). */
async function until(what: string, condition: () => Promise<boolean>, everyMs = 100): Promise<void> {
  const deadline = Date.now() + BATCH_TIMEOUT_S * 1000;
  let last = 0;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`i) timed out after ${BATCH_TIMEOUT_S} s waiting for ${what} (BENCH_BATCH_TIMEOUT_S)`);
    if (Date.now() - last > 5_000) {
      last = Date.now();
      log(`i) waiting for ${what}`);
    }
    await sleep(everyMs);
  }
}

async function json(response: Response, what: string): Promise<Record<string, any>> {
  const body = (await response.json()) as Record<string, any>;
  if (!response.ok) throw new Error(`${what} answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
  return body;
}

async function batch(s: Setup, gateway: Child, authorization: string, lines: number): Promise<{ linesPerSecond: number; exactlyOnce: boolean }> {
  const line = (i: number) =>
    JSON.stringify({ custom_id: `l${i}`, method: "POST", url: "/v1/completions", body: { model: "default", prompt: PROMPT, max_tokens: MAX_LENGTH, temperature: 0.8 } });
  const jsonl = Array.from({ length: lines }, (_, i) => line(i)).join("\n") + "\n";
  const form = new FormData();
  form.set("purpose", "batch");
  form.set("file", new Blob([jsonl], { type: "application/jsonl" }), "bench.jsonl");
  const file = await json(await fetch(`${gateway.url}/v1/files`, { method: "POST", headers: { authorization }, body: form }), "POST /v1/files");
  const created = await json(
    await fetch(`${gateway.url}/v1/batches`, {
      method: "POST",
      headers: { authorization, "content-type": "application/json" },
      body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/completions", completion_window: "24h" }),
    }),
    "POST /v1/batches",
  );
  let final: Record<string, any> = created;
  await until(`batch ${created.id} to end`, async () => {
    final = await json(await fetch(`${gateway.url}/v1/batches/${created.id}`, { headers: { authorization } }), "GET /v1/batches/:id");
    return ["completed", "failed", "expired", "cancelled"].includes(final.status);
  }, 500);
  if (final.status !== "completed") throw new Error(`i) the batch ended ${final.status}: ${JSON.stringify(final.errors ?? null)}`);
  const { rows } = await s.db.query<{ seconds: number }>("SELECT extract(epoch FROM (completed_at - created_at)) AS seconds FROM batches WHERE batch_id = $1", [created.id]);
  const output = await (await fetch(`${gateway.url}/v1/files/${final.output_file_id}/content`, { headers: { authorization } })).text();
  const seen = new Map<string, number>();
  let ok = 0;
  for (const row of output.trimEnd().split("\n")) {
    const parsed = JSON.parse(row) as { custom_id: string; response: { status_code: number } | null };
    seen.set(parsed.custom_id, (seen.get(parsed.custom_id) ?? 0) + 1);
    if (parsed.response?.status_code === 200) ok++;
  }
  const exactlyOnce = !final.error_file_id && ok === lines && seen.size === lines && [...seen.values()].every((n) => n === 1);
  return { linesPerSecond: lines / Number(rows[0]?.seconds), exactlyOnce };
}

export async function phaseBatch(s: Setup, gateway: Child, api: Child): Promise<BatchReport> {
  setPhase("i");
  const [single, bulk, interactive, singleAfter] = [await tenant(s, "singles"), await tenant(s, "batch"), await tenant(s, "interactive"), await tenant(s, "singles-after")];
  let idleCount = 0;
  const idleIds = await interactiveLoop(gateway, api, interactive.authorization, () => idleCount++ >= 50);
  const idleWaits = await waitsOf(s, idleIds);
  log(`i) idle: ${idleWaits.length} interactive requests, queue wait p99 ${nearestRank(idleWaits, 99).toFixed(1)} ms`);

  log(`i) ${BATCH_LINES} requests one by one through POST /api/v1/inference`);
  const singlesCpuStart = cpuSnapshot();
  const singlesBeforePerSecond = await singles(s, gateway, single.authorization, single.userId);
  const singlesCpu = cpuDelta(singlesCpuStart);
  log(`i) singles: ${singlesBeforePerSecond.toFixed(0)} requests/s`);

  log(`i) the same ${BATCH_LINES} requests as one batch`);
  const batchCpuStart = cpuSnapshot();
  const bulkResult = await batch(s, gateway, bulk.authorization, BATCH_LINES);
  const batchCpu = cpuDelta(batchCpuStart);
  log(`i) the same ${BATCH_LINES} requests one by one again`);
  const singlesAfterPerSecond = await singles(s, gateway, singleAfter.authorization, singleAfter.userId);
  const singlesPerSecond = (singlesBeforePerSecond + singlesAfterPerSecond) / 2;
  log(`i) batch: ${bulkResult.linesPerSecond.toFixed(0)} lines/s; singles ${singlesBeforePerSecond.toFixed(0)}/s before, ${singlesAfterPerSecond.toFixed(0)}/s after; ${(bulkResult.linesPerSecond / singlesPerSecond).toFixed(2)} of their mean`);

  const secondLines = Math.ceil(BATCH_LINES / 2);
  log(`i) a batch of ${secondLines} lines, a second tenant's interactive requests meanwhile`);
  let batchDone = false;
  const duringIds = interactiveLoop(gateway, api, interactive.authorization, () => batchDone);
  const second = await batch(s, gateway, bulk.authorization, secondLines).finally(() => (batchDone = true));
  const during = await waitsOf(s, await duringIds);
  const report: BatchReport = {
    lines: BATCH_LINES,
    singlesPerSecond,
    singlesBeforePerSecond,
    singlesAfterPerSecond,
    batchLinesPerSecond: bulkResult.linesPerSecond,
    batchVsSingleRatio: bulkResult.linesPerSecond / singlesPerSecond,
    idleWaitP99Ms: nearestRank(idleWaits, 99),
    interactiveDuringBatch: during.length,
    interactiveWaitP50DuringBatchMs: nearestRank(during, 50),
    interactiveWaitP99DuringBatchMs: nearestRank(during, 99),
    exactlyOnce: bulkResult.exactlyOnce && second.exactlyOnce,
    singlesCpu,
    batchCpu,
    singlesRetried503: retried503,
  };
  log(
    `i) interactive wait during the second batch p50 ${report.interactiveWaitP50DuringBatchMs.toFixed(1)} ms, p99 ${report.interactiveWaitP99DuringBatchMs.toFixed(1)} ms (${report.interactiveDuringBatch} requests; idle p99 ${report.idleWaitP99Ms.toFixed(1)} ms); every line once: ${report.exactlyOnce}${retried503 > 0 ? `; singles retried ${retried503} admissions answered 503` : ""}`,
  );
  return report;
}

/**
 * Phase (h), the queue estimate at steady load (issue 9, item 4): ESTIMATE_CLIENTS clients, more than
 * the worker's call slots, each submitting POST /api/v1/inference and polling its status until it is
 * final, then submitting the next, so a steady backlog waits. Measured for SECONDS after
 * BENCH_ESTIMATE_WARMUP_S (default 6) of the same load. Each 202 carries the predicted start
 * (`estimated_start_at`); the actual start is the stored `started_at`. The error of one request is
 * |predicted wait − actual wait| ÷ actual wait, both from its admission.
 */
import { ESTIMATE_WARMUP_SECONDS, SECONDS, log } from "./settings.js";
import { setPhase, type Child } from "./children.js";
import { requestBody } from "./phases.js";
import { RawConnection, httpRequest, pollUntilFinal } from "./raw-http.js";
import type { Setup } from "./setup.js";

export interface EstimateReport {
  clients: number;
  pollMs: number;
  requests: number;
  /** Requests admitted with an estimate (none before the first throughput is measured). */
  estimated: number;
  medianActualWaitMs: number;
  medianPredictedWaitMs: number;
  medianError: number;
  p90Error: number;
  /** Diagnostic: the median error once every prediction is scaled by median actual ÷ median predicted (what spread alone costs). */
  medianErrorUnbiased: number;
  /** Diagnostic: median error by the load's phase, first and second half of the measured requests. */
  medianErrorByHalf: [number, number];
}

const median = (values: number[], q = 0.5) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
};

export async function phaseEstimate(s: Setup, gateway: Child, api: Child, load: { clients: number; pollMs: number; phase: string }): Promise<EstimateReport> {
  setPhase(load.phase);
  const admitted: Array<{ id: string; createdAt: number; predictedStart: number | null }> = [];
  const submit = httpRequest("POST", "/api/v1/inference", { "content-type": "application/json", authorization: s.authorization }, requestBody);
  const port = (child: Child) => Number(new URL(child.url).port);
  // Steady load first: the gateway's throughput window (QUEUE_ESTIMATE_WINDOW_S, 4 s in the bench)
  // must hold this phase's traffic alone before an estimate is compared with what happened.
  const measureFrom = performance.now() + ESTIMATE_WARMUP_SECONDS * 1000;
  const end = measureFrom + SECONDS * 1000;
  const client = async () => {
    const g = new RawConnection("127.0.0.1", port(gateway));
    const a = new RawConnection("127.0.0.1", port(api));
    try {
      while (performance.now() < end) {
        const answer = await g.request(submit);
        if (answer.status !== 202) throw new Error(`admission answered ${answer.status}`);
        const body = JSON.parse(answer.body.toString("utf8")) as { request_id: string; timestamp: string; estimated_start_at: string | null };
        if (performance.now() >= measureFrom) admitted.push({ id: body.request_id, createdAt: Date.parse(body.timestamp), predictedStart: body.estimated_start_at ? Date.parse(body.estimated_start_at) : null });
        await pollUntilFinal(a, body.request_id, s.authorization, load.pollMs);
      }
    } finally {
      g.close();
      a.close();
    }
  };
  await Promise.all(Array.from({ length: load.clients }, client));
  const steady = admitted.filter((r) => r.predictedStart !== null);
  const started = new Map(
    (
      await s.db.query<{ request_id: string; started_at: Date }>("SELECT request_id, started_at FROM inference_requests WHERE request_id = ANY($1::uuid[])", [
        steady.map((r) => r.id),
      ])
    ).rows.map((row) => [row.request_id, new Date(row.started_at).getTime()]),
  );
  const actual: number[] = [];
  const predicted: number[] = [];
  const errors: number[] = [];
  for (const r of steady) {
    const start = started.get(r.id);
    if (start === undefined) continue;
    const actualWait = Math.max(1, start - r.createdAt);
    const predictedWait = Math.max(0, (r.predictedStart as number) - r.createdAt);
    actual.push(actualWait);
    predicted.push(predictedWait);
    errors.push(Math.abs(predictedWait - actualWait) / actualWait);
  }
  const scale = median(actual) / Math.max(1, median(predicted));
  const unbiased = actual.map((a, i) => Math.abs(predicted[i]! * scale - a) / a);
  const half = Math.floor(errors.length / 2);
  const report = {
    medianErrorUnbiased: median(unbiased),
    medianErrorByHalf: [median(errors.slice(0, half)), median(errors.slice(half))] as [number, number],
    clients: load.clients,
    pollMs: load.pollMs,
    requests: admitted.length,
    estimated: admitted.filter((r) => r.predictedStart !== null).length,
    medianActualWaitMs: median(actual),
    medianPredictedWaitMs: median(predicted),
    medianError: median(errors),
    p90Error: median(errors, 0.9),
  };
  log(`${load.phase}) ${report.requests} requests by ${report.clients} clients; wait median ${report.medianActualWaitMs.toFixed(0)} ms, predicted ${report.medianPredictedWaitMs.toFixed(0)} ms; error median ${(report.medianError * 100).toFixed(1)} %, p90 ${(report.p90Error * 100).toFixed(1)} % (${(report.medianErrorUnbiased * 100).toFixed(1)} % with the predictions scaled to the actual median; halves ${report.medianErrorByHalf.map((e) => (e * 100).toFixed(1)).join(" / ")} %)`);
  return report;
}

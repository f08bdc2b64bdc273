/** The printed tables. */
import { CONNECTIONS, DRAIN_TIMEOUT_S, MAX_LENGTH, RUN, SCHEDULING, SECONDS, STREAM_MIN_STREAMS, STREAM_SECONDS, WARMUP_SECONDS, WORKER_PREFETCH, fmt } from "./settings.js";
import { children } from "./children.js";
import type { DrainReport } from "./drain.js";
import type { EstimateReport } from "./estimate.js";
import type { BatchReport } from "./batch.js";
import type { TracingOffReport } from "./tracing-off.js";
import { summarize, type LoadResult, type Summary } from "./load.js";
import { machineCores, type CpuSnapshotDelta } from "./proc.js";
import { streamingFigures, streamingTable, type StreamingReport } from "./streaming.js";

export function loadTable(rows: Summary[]): string {
  const out = ["| phase | ok | errors | throughput (/s) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |", "|---|--:|--:|--:|--:|--:|--:|--:|"];
  for (const r of rows) {
    out.push(`| ${r.label} | ${fmt(r.ok)} | ${fmt(r.errors)} | ${fmt(r.throughput)} | ${fmt(r.p50, 2)} | ${fmt(r.p90, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.max, 1)} |`);
  }
  return out.join("\n");
}

export function cpuTable(phases: Array<[string, CpuSnapshotDelta | undefined, number]>): string {
  const groups = new Set<string>();
  for (const [, d] of phases) if (d) for (const g of Object.keys(d.byGroup)) groups.add(g);
  const order = [...groups].sort((a, b) => (a === "other processes" ? 1 : b === "other processes" ? -1 : a.localeCompare(b)));
  const head = `| process (CPU % of one core) | ${phases.map(([p]) => p).join(" | ")} |`;
  const out = [head, `|---|${phases.map(() => "--:").join("|")}|`];
  for (const g of order) out.push(`| ${g} | ${phases.map(([, d]) => (d && d.byGroup[g] !== undefined ? fmt(d.byGroup[g]!) : "")).join(" | ")} |`);
  out.push(`| **machine busy** (of ${phases[0]?.[1]?.cores ?? "?"}00) | ${phases.map(([, d]) => (d ? fmt(d.machineBusyPct) : "")).join(" | ")} |`);
  // CPU time per request is steadier than throughput when other work shares the machine.
  out.push(`| | ${phases.map(() => "").join(" | ")} |`);
  out.push(`| **CPU µs per request** (by process; per stream in g) | ${phases.map(() => "").join(" | ")} |`);
  const perRequest = (d: CpuSnapshotDelta | undefined, done: number, g: string) =>
    d && done > 0 && d.byGroup[g] !== undefined ? (d.byGroup[g]! / 100) * d.seconds * 1e6 / done : Number.NaN;
  for (const g of order.filter((g) => g !== "other processes")) {
    out.push(`| ${g} | ${phases.map(([, d, done]) => { const v = perRequest(d, done, g); return Number.isFinite(v) && v >= 0.5 ? fmt(v) : ""; }).join(" | ")} |`);
  }
  out.push(`| **total, these processes** | ${phases.map(([, d, done]) => { let t = 0; for (const g of order) if (g !== "other processes") { const v = perRequest(d, done, g); if (Number.isFinite(v)) t += v; } return d && done > 0 ? `**${fmt(t)}**` : ""; }).join(" | ")} |`);
  return out.join("\n");
}

/** CPU µs per request of the known processes (servers, components, load generator), others left out. */
export function cpuPerRequest(r: LoadResult): number {
  if (!r.cpu || r.ok === 0) return Number.NaN;
  let pct = 0;
  for (const [g, v] of Object.entries(r.cpu.byGroup)) if (g !== "other processes") pct += v;
  return ((pct / 100) * r.cpu.seconds * 1e6) / r.ok;
}

export function memoryTable(): string {
  const phases = ["setup", "a", "b", "c", "d", "f", "g", "h", "i", "b1", "b2"];
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

/** Groups that are not the platform: the model, the load generator, and whatever else runs. */
const NOT_PLATFORM = new Set(["ml-service", "bench (load generator)", "other processes"]);

/** CPU µs the platform (every component and server but the ML Service) spent per drained request. */
export function platformCpuPerRequest(drain: DrainReport): number {
  if (drain.rows === 0) return Number.NaN;
  let pct = 0;
  for (const [g, v] of Object.entries(drain.cpu.byGroup)) if (!NOT_PLATFORM.has(g)) pct += v;
  return ((pct / 100) * drain.cpu.seconds * 1e6) / drain.rows;
}

export interface Figures {
  ceiling: LoadResult;
  admission: LoadResult;
  /** What tracing, off, adds to an admission. */
  tracingOff: TracingOffReport;
  status: LoadResult;
  drain: DrainReport | undefined;
  mlAlone: LoadResult | undefined;
  /** (f0): the same as (f), right before the drain; the ratio divides by the mean of both. */
  mlAloneBefore?: LoadResult | undefined;
  /** The ML Service alone with the worker's own call (paced NDJSON): the protocol's share of the gap. */
  mlAlonePaced?: LoadResult | undefined;
  /** (h): the queue estimate's error at steady load. */
  estimate: EstimateReport | undefined;
  /** (h2): the same with a shallow backlog. */
  estimateShallow?: EstimateReport | undefined;
  /** (i): a batch vs the same requests one by one, and interactive waits during it. */
  batch: BatchReport | undefined;
  /** (b1) and (b2), run one after the other after (g) with the worker stopped (see platform.ts). */
  admissionAgain: LoadResult | undefined;
  v1Admission: LoadResult | undefined;
  streaming: StreamingReport | undefined;
  runSeconds: number;
}

/** The derived figures both the table and BENCH_JSON report. */
export function derive(f: Figures) {
  const [a, b, c] = [summarize(f.ceiling), summarize(f.admission), summarize(f.status)];
  const f6 = f.mlAlone && summarize(f.mlAlone);
  const f0 = f.mlAloneBefore && summarize(f.mlAloneBefore);
  const mlAloneRate = f6 ? (f0 ? (f0.throughput + f6.throughput) / 2 : f6.throughput) : Number.NaN;
  const b2 = f.v1Admission && summarize(f.v1Admission);
  const b1 = f.admissionAgain && summarize(f.admissionAgain);
  return {
    a,
    b,
    b1,
    b2,
    v1AdmissionRatio: b2 && b1 ? b2.throughput / b1.throughput : Number.NaN,
    c,
    f: f6,
    f0,
    mlAloneRate,
    ratio: b.throughput / a.throughput,
    cpuRatio: cpuPerRequest(f.ceiling) / cpuPerRequest(f.admission),
    platformCpuUsPerRequest: f.drain ? platformCpuPerRequest(f.drain) : Number.NaN,
    drainVsMlAlone: f.drain ? f.drain.rate / mlAloneRate : Number.NaN,
    f2: f.mlAlonePaced && summarize(f.mlAlonePaced),
  };
}

export function renderReport(f: Figures): string {
  const { a, b, b1, b2, v1AdmissionRatio, c, f: f6, f0, mlAloneRate, f2, ratio, cpuRatio, platformCpuUsPerRequest, drainVsMlAlone } = derive(f);
  const drain = f.drain;
  const lines: string[] = [];
  lines.push(`\n## Platform benchmark — ${new Date().toISOString()}`);
  lines.push(`\n${CONNECTIONS} concurrent, ${SECONDS} s measured per phase after ${WARMUP_SECONDS} s warm-up; Node ${process.version}; ${machineCores()} cores; ${SCHEDULING === "equal" ? "every process at the same CPU weight" : "each component at the CPU weight of its manifest's request (BENCH_SCHEDULING=requests)"}.\n`);
  lines.push("### Throughput and latency\n");
  const rows = [a, b, ...(b1 ? [b1] : []), ...(b2 ? [b2] : []), c, ...(f0 ? [f0] : []), ...(f6 ? [f6] : []), ...(f2 ? [f2] : [])];
  lines.push(loadTable(rows));
  const failures = rows.filter((r) => r.errors > 0);
  if (failures.length > 0) {
    lines.push("\nErrors:");
    for (const r of failures) lines.push(`- ${r.label}: ${JSON.stringify(r.failures)}`);
  }
  if (b2) {
    lines.push(
      `\n(b2) measures the OpenAI door's admission: a non-streamed /v1/chat/completions holds its connection until the request completes, so admission is timed through POST /v1/responses with background: true, which shares admission.ts and answers "queued" at once.` +
        ` It runs last (after (g), the worker stopped; right after (c) when the drain is skipped), so the queue fills as in (b), right after (b1), which is (b) again in the same conditions; their requests are left queued and removed with the run's queues. /v1 ÷ /api/v1 admission, (b2) ÷ (b1): **${fmt(v1AdmissionRatio, 2)}**.`,
    );
  }
  lines.push(`\nAdmission / ceiling: **${fmt(ratio * 100, 1)} %** (${fmt(b.throughput)} vs ${fmt(a.throughput)} per s).`);
  lines.push(
    `By CPU time per request of the processes involved (steadier when other work shares the machine): ceiling ${fmt(cpuPerRequest(f.ceiling))} µs, admission ${fmt(cpuPerRequest(f.admission))} µs → **${fmt(cpuRatio * 100, 1)} %**` +
      ` (what the throughput ratio would be if both were CPU-bound on an otherwise idle machine).`,
  );
  lines.push("\n### CPU by process during each phase\n");
  lines.push(
    cpuTable([
      ["a) ceiling", f.ceiling.cpu, f.ceiling.ok],
      ["b) admission", f.admission.cpu, f.admission.ok],
      ...(f.admissionAgain ? [["b1) admission again", f.admissionAgain.cpu, f.admissionAgain.ok] as [string, CpuSnapshotDelta | undefined, number]] : []),
      ...(f.v1Admission ? [["b2) /v1 admission", f.v1Admission.cpu, f.v1Admission.ok] as [string, CpuSnapshotDelta | undefined, number]] : []),
      ["c) status", f.status.cpu, f.status.ok],
      ["d) drain", drain?.cpu, drain ? drain.rows : 0],
      ["f) ML alone", f.mlAlone?.cpu, f.mlAlone?.ok ?? 0],
      ...(f.mlAlonePaced ? [["f2) ML alone, paced NDJSON", f.mlAlonePaced.cpu, f.mlAlonePaced.ok] as [string, CpuSnapshotDelta | undefined, number]] : []),
      ...(f.streaming?.legs ?? []).filter((l) => l.concurrency > 1).map((l) => [`g) ${l.target} ×${l.concurrency} streams`, l.cpu, l.streams] as [string, CpuSnapshotDelta | undefined, number]),
      ...(f.batch ? [["i) one by one", f.batch.singlesCpu, f.batch.lines], ["i) as a batch", f.batch.batchCpu, f.batch.lines]] as Array<[string, CpuSnapshotDelta | undefined, number]> : []),
    ]),
  );
  if (drain) {
    lines.push("\n### Drain (workers resumed)\n");
    lines.push(`${fmt(drain.rows)} requests drained in ${fmt(drain.seconds, 1)} s (${fmt(drain.rate)}/s end to end${drain.timedOut ? `, **time bound of ${DRAIN_TIMEOUT_S} s reached**` : ""}); worker retries ${fmt(drain.worker.retried)}; ${fmt(drain.worker.resultsMessages)} results messages, ${fmt(drain.rows / drain.worker.resultsMessages, 1)} outcomes each.`);
    lines.push(`Calls in flight over the drain (Little's law): worker → ML Service ${fmt(drain.inFlight.workerCalls, 1)} (mean call ${fmt(drain.inFlight.workerCallMs, 1)} ms), inside the ML Service ${fmt(drain.inFlight.mlRequests, 1)} (mean ${fmt(drain.inFlight.mlRequestMs, 1)} ms).`);
    lines.push(`Platform CPU (every process but the ML Service and the load generator): **${fmt(platformCpuUsPerRequest)} µs per completed request**.`);
    if (f6) lines.push(`ML Service alone, same request body at the drain's concurrency (${WORKER_PREFETCH}): ${f0 ? `${fmt(f0.throughput)}/s before the drain (f0), ` : ""}${fmt(f6.throughput)}/s after it (f)${f0 ? `, mean ${fmt(mlAloneRate)}/s` : ""} → end to end ÷ ML Service alone **${fmt(drainVsMlAlone, 2)}**.`);
    if (f2 && drain) lines.push(`ML Service alone with a paced NDJSON call (same concurrency; the worker's call before it cancelled whole answers by id): ${fmt(f2.throughput)}/s, ${fmt(f2.throughput / (f6?.throughput ?? Number.NaN), 2)} of (f).`);
    lines.push("\n| check | ok | detail |\n|---|:-:|---|");
    for (const ch of drain.checks) lines.push(`| ${ch.check} | ${ch.ok ? "yes" : "**NO**"} | ${ch.detail} |`);
  }
  if (f.streaming) {
    lines.push("\n### Streaming: gateway vs ML Service direct\n");
    lines.push(streamingTable(f.streaming));
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
  const t = f.tracingOff;
  lines.push(`| b) tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT): what its calls add to an admission | ${fmt(t.addedNsPerAdmission)} ns of the gateway's ${fmt(t.gatewayUsPerAdmission)} µs = ${fmt(t.share * 100, 3)} % | ≤ 3 % | ${yes(t.share <= 0.03)} |`);
  const h = f.estimate;
  const h2 = f.estimateShallow;
  if (h) lines.push(`| h) queue estimate at steady load, a deep backlog (${h.clients} clients): median error of the predicted start | predicted ${fmt(h.medianPredictedWaitMs)} ms vs actual ${fmt(h.medianActualWaitMs)} ms median wait; error median ${fmt(h.medianError * 100, 1)} %, p90 ${fmt(h.p90Error * 100, 1)} % | median ≤ 20 % | ${yes(h.medianError <= 0.2)} |`);
  if (h2) lines.push(`| h2) queue estimate with a shallow backlog (${h2.clients} clients): median error of the predicted start | predicted ${fmt(h2.medianPredictedWaitMs)} ms vs actual ${fmt(h2.medianActualWaitMs)} ms median wait; error median ${fmt(h2.medianError * 100, 1)} % (${fmt(h2.medianErrorUnbiased * 100, 1)} % with the predictions scaled to the actual median), p90 ${fmt(h2.p90Error * 100, 1)} % | — | |`);
  const i = f.batch;
  if (i) {
    lines.push(`| i) a ${fmt(i.lines)}-line batch ÷ the same requests one by one (lines/s; one by one: the mean of before and after the batch) | ${fmt(i.batchLinesPerSecond)}/s ÷ ${fmt(i.singlesPerSecond)}/s (${fmt(i.singlesBeforePerSecond)} before, ${fmt(i.singlesAfterPerSecond)} after) = ${fmt(i.batchVsSingleRatio, 2)}; every line once: ${i.exactlyOnce ? "yes" : "**NO**"} | ≥ 0.95 | ${yes(i.batchVsSingleRatio >= 0.95 && i.exactlyOnce)} |`);
    lines.push(`| i) another tenant's interactive queue wait during a batch (a second one, of ${fmt(Math.ceil(i.lines / 2))} lines) | p50 ${fmt(i.interactiveWaitP50DuringBatchMs, 1)} ms, p99 ${fmt(i.interactiveWaitP99DuringBatchMs, 1)} ms (${fmt(i.interactiveDuringBatch)} requests; idle p99 ${fmt(i.idleWaitP99Ms, 1)} ms) | — | |`);
  }
  if (b2 && b1) lines.push(`| b2 ÷ b1) /v1/responses (background) ÷ /api/v1/inference admission, one after the other | ${fmt(b2.throughput)}/s ÷ ${fmt(b1.throughput)}/s = ${fmt(v1AdmissionRatio, 2)} | ≥ 0.9 | ${yes(v1AdmissionRatio >= 0.9 && b2.errors === 0)} |`);
  lines.push(`| c) status lookups | ${fmt(c.throughput)}/s, p50 ${fmt(c.p50, 1)} ms, p99 ${fmt(c.p99, 1)} ms | ≥ 5,000/s, p99 ≤ 10 ms | ${yes(c.throughput >= 5000 && c.p99 <= 10 && c.errors === 0)} |`);
  if (drain) {
    lines.push(`| d) every admitted request completed exactly once | ${fmt(drain.byStatus.completed ?? 0)} of ${fmt(drain.admitted)} in ${fmt(drain.seconds, 1)} s | all, once | ${yes(drain.checks.every((ch) => ch.ok))} |`);
    lines.push(`| d) platform CPU per completed request | ${fmt(platformCpuUsPerRequest)} µs | ≤ 1,000 µs | ${yes(platformCpuUsPerRequest <= 1000)} |`);
  }
  if (drain && f6) lines.push(`| d ÷ f) end to end ÷ ML Service alone${f0 ? " (mean of f0 before and f after the drain)" : ""} | ${fmt(drain.rate)}/s ÷ ${fmt(mlAloneRate)}/s = ${fmt(drainVsMlAlone, 2)} | ≥ 0.85 | ${yes(drainVsMlAlone >= 0.85)} |`);
  if (drain && f2) lines.push(`| d ÷ f2) end to end ÷ ML Service alone with a paced NDJSON call | ${fmt(drain.rate)}/s ÷ ${fmt(f2.throughput)}/s = ${fmt(drain.rate / f2.throughput, 2)} | — | |`);
  if (f.streaming) {
    const sf = streamingFigures(f.streaming);
    const le = (v: number | null, max: number) => v !== null && v <= max;
    lines.push(`| g) added TTFT (gateway − direct), 1 stream | p50 ${fmt(sf.ttft_added_p50_ms ?? Number.NaN, 1)} ms, p99 ${fmt(sf.ttft_added_p99_ms ?? Number.NaN, 1)} ms | p50 ≤ 15 ms, p99 ≤ 40 ms | ${yes(le(sf.ttft_added_p50_ms, 15) && le(sf.ttft_added_p99_ms, 40))} |`);
    lines.push(`| g) streamed tokens/s gateway ÷ direct, ${sf.stream_concurrency} streams | ${fmt(sf.stream_tokens_ratio_16 ?? Number.NaN, 2)} | ≥ 0.8 | ${yes((sf.stream_tokens_ratio_16 ?? 0) >= 0.8 && sf.stream_errors === 0)} |`);
  }
  lines.push(`| e) peak RSS, components other than ml-service | max ${fmt(maxOtherMb)} MB (gateway ${fmt(gatewayMb)} MB) | ≤ 200 MB each | ${yes(maxOtherMb <= 200)} |`);
  lines.push(`\nWhole run: ${fmt(f.runSeconds, 1)} s.`);
  return `${lines.join("\n")}\n`;
}

/** What BENCH_JSON holds. */
export function benchJson(f: Figures): string {
  const { a, b, b1, b2, v1AdmissionRatio, c, f: f6, f0, mlAloneRate, f2, ratio, cpuRatio, platformCpuUsPerRequest, drainVsMlAlone } = derive(f);
  const drainVsPaced = f.drain && f2 ? f.drain.rate / f2.throughput : Number.NaN;
  return JSON.stringify(
    {
      run: RUN,
      at: new Date().toISOString(),
      settings: { seconds: SECONDS, warmup: WARMUP_SECONDS, connections: CONNECTIONS, maxLength: MAX_LENGTH, workerPrefetch: WORKER_PREFETCH, scheduling: SCHEDULING, streamSeconds: STREAM_SECONDS, streamMinStreams: STREAM_MIN_STREAMS },
      ceiling: a,
      admission: b,
      ratio,
      cpuRatio,
      status: c,
      mlAlone: f6,
      mlAloneBefore: f0 ?? null,
      ml_alone_rate: Number.isFinite(mlAloneRate) ? mlAloneRate : null,
      platform_cpu_us_per_request: Number.isFinite(platformCpuUsPerRequest) ? platformCpuUsPerRequest : null,
      drain_vs_ml_alone: Number.isFinite(drainVsMlAlone) ? drainVsMlAlone : null,
      ml_alone_paced: f2 ?? null,
      drain_vs_ml_alone_paced: Number.isFinite(drainVsPaced) ? drainVsPaced : null,
      admission_again: b1,
      v1_admission: b2,
      v1_admission_ratio: Number.isFinite(v1AdmissionRatio) ? v1AdmissionRatio : null,
      queue_estimate: f.estimate ?? null,
      queue_estimate_shallow: f.estimateShallow ?? null,
      queue_estimate_median_error_shallow: f.estimateShallow && Number.isFinite(f.estimateShallow.medianError) ? f.estimateShallow.medianError : null,
      queue_estimate_median_error: f.estimate && Number.isFinite(f.estimate.medianError) ? f.estimate.medianError : null,
      tracing_off_admission_share: Number.isFinite(f.tracingOff.share) ? f.tracingOff.share : null,
      tracing_off: f.tracingOff,
      batch_vs_single_ratio: f.batch && Number.isFinite(f.batch.batchVsSingleRatio) ? f.batch.batchVsSingleRatio : null,
      interactive_wait_p99_during_batch_ms: f.batch && Number.isFinite(f.batch.interactiveWaitP99DuringBatchMs) ? f.batch.interactiveWaitP99DuringBatchMs : null,
      batch: f.batch && { ...f.batch, singlesCpu: undefined, batchCpu: undefined },
      ...streamingFigures(f.streaming),
      streaming: f.streaming?.legs.map((l) => ({ ...l, cpu: undefined })),
      cpu: { a: f.ceiling.cpu, b: f.admission.cpu, b1: f.admissionAgain?.cpu, b2: f.v1Admission?.cpu, c: f.status.cpu, d: f.drain?.cpu, f: f.mlAlone?.cpu, i: f.batch && { singles: f.batch.singlesCpu, batch: f.batch.batchCpu }, g: f.streaming?.legs.map((l) => l.cpu) },
      drain: f.drain && { ...f.drain, cpu: undefined },
      memoryMb: Object.fromEntries([...children.values()].map((ch) => [ch.name, { peakHwm: ch.peakHwmKb / 1024, byPhase: Object.fromEntries([...ch.phaseRssKb].map(([p, kb]) => [p, kb / 1024])) }])),
    },
    null,
    2,
  );
}

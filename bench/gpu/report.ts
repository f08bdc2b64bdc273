/**
 * The GPU benchmark's table: llama-batched-bench (the anchor) beside the ML Service over HTTP, per
 * model and concurrency, with the issue's targets. Pure: takes the files' text, returns markdown and JSON.
 * The anchor's comparable figure is generated tokens over prefill plus generation time
 * (pl·tg / (t_pp + t_tg)), since the service's tokens/s counts completion tokens over wall time that
 * includes each request's prefill; its time to first token is the batch prefill plus one decode step.
 */
export interface ModelEntry {
  name: string;
  path: string;
  bytes: number;
  generateSeconds: number;
  pp: number;
  tg: number;
  rounds: number;
}

/** One line of `llama-batched-bench --output-format jsonl`. */
export interface BatchedRow {
  pp: number;
  tg: number;
  pl: number;
  t_pp: number;
  t_tg: number;
  t: number;
  speed_pp: number;
  speed_tg: number;
  speed: number;
  n_gpu_layers: number;
}

export interface ServiceLevel {
  concurrency: number;
  requests: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  ttftMedianMs: number;
  ttftMaxMs: number;
}

export interface ServiceResult {
  name: string;
  device: string;
  readySeconds: number;
  engineLoadSeconds: number | null;
  maxTokens: number;
  levels: ServiceLevel[];
}

export interface ReportInput {
  mode: string;
  /** times.tsv: "step\tseconds" lines. */
  times: string;
  gpu: string;
  /** nvidia-smi CSV: "YYYY/MM/DD HH:MM:SS.mmm, used MiB, util %". */
  gpuMem: string;
  /** phases.tsv: "YYYY/MM/DD HH:MM:SS.mmm\tlabel", in order. */
  phases: string;
  batched: Record<string, BatchedRow[]>;
  services: Record<string, ServiceResult>;
  packBytes?: number | undefined;
}

export const anchorTokensPerSecond = (r: BatchedRow) => (r.pl * r.tg) / (r.t_pp + r.t_tg);
export const anchorTtftMs = (r: BatchedRow) => (r.t_pp + r.t_tg / Math.max(1, r.tg)) * 1000;

const stamp = (s: string) => Date.parse(s.trim().replace(/\//g, "-").replace(" ", "T"));

/** Peak GPU memory used (MiB) during each phase, and the idle baseline before the first. */
export function gpuMemoryByPhase(gpuMem: string, phases: string): { idleMiB: number | null; peakMiB: Record<string, number> } {
  const samples = gpuMem
    .split("\n")
    .map((l) => l.split(","))
    .filter((f) => f.length >= 2 && Number.isFinite(stamp(f[0] as string)))
    .map((f) => ({ t: stamp(f[0] as string), used: Number(f[1]) }));
  const marks = phases
    .split("\n")
    .map((l) => l.split("\t"))
    .filter((f) => f.length === 2 && Number.isFinite(stamp(f[0] as string)))
    .map((f) => ({ t: stamp(f[0] as string), label: (f[1] as string).trim() }));
  const peakMiB: Record<string, number> = {};
  let idleMiB: number | null = null;
  marks.forEach((m, i) => {
    const end = marks[i + 1]?.t ?? Infinity;
    const inside = samples.filter((s) => s.t >= m.t && s.t < end).map((s) => s.used);
    if (inside.length === 0) return;
    if (m.label === "idle") idleMiB = Math.min(...inside);
    else peakMiB[m.label] = Math.max(...inside);
  });
  return { idleMiB, peakMiB };
}

export function parseTimes(times: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of times.split("\n")) {
    const [k, v] = line.split("\t");
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

const f = (n: number | null | undefined, d = 0) => (n === null || n === undefined || !Number.isFinite(n) ? "—" : n.toFixed(d));

export function summarize(input: ReportInput): { markdown: string; json: unknown } {
  const times = parseTimes(input.times);
  const mem = gpuMemoryByPhase(input.gpuMem, input.phases);
  const lines: string[] = [
    `## GPU benchmark (${input.mode}${input.gpu ? `: ${input.gpu}` : ""})`,
    "",
    `Steps (s): ${Object.entries(times).map(([k, v]) => `${k} ${v}`).join(", ") || "—"}` +
      (input.packBytes ? `; travelled ${(input.packBytes / 1024 / 1024).toFixed(1)} MiB` : ""),
    "",
    "| model | seqs | llama.cpp tok/s | llama.cpp S_TG tok/s | service tok/s | service / llama.cpp | TTFT llama.cpp (ms) | TTFT service median (ms) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const verdicts: string[] = [];
  const json: Record<string, unknown> = { mode: input.mode, gpu: input.gpu, times, gpuMemory: mem, models: {} };
  for (const name of [...new Set([...Object.keys(input.batched), ...Object.keys(input.services)])]) {
    const rows = input.batched[name] ?? [];
    const svc = input.services[name];
    const perLevel: unknown[] = [];
    const levels = [...new Set([...rows.map((r) => r.pl), ...(svc?.levels.map((l) => l.concurrency) ?? [])])].sort((a, b) => a - b);
    for (const pl of levels) {
      const a = rows.find((r) => r.pl === pl);
      const s = svc?.levels.find((l) => l.concurrency === pl);
      const ratio = a && s ? s.tokensPerSecond / anchorTokensPerSecond(a) : null;
      lines.push(
        `| ${name} | ${pl} | ${f(a && anchorTokensPerSecond(a))} | ${f(a?.speed_tg)} | ${f(s?.tokensPerSecond)} | ${ratio === null ? "—" : `${(ratio * 100).toFixed(0)}%`} | ${f(a && anchorTtftMs(a))} | ${f(s?.ttftMedianMs)} |`,
      );
      perLevel.push({ sequences: pl, anchor: a ?? null, service: s ?? null, ratio });
      if (ratio !== null && pl >= 16) verdicts.push(`${name} at ${pl}: service ${(ratio * 100).toFixed(0)}% of llama.cpp (target ≥ 90%: ${ratio >= 0.9 ? "met" : "MISSED"})`);
    }
    const one = svc?.levels.find((l) => l.concurrency === 1);
    const top = svc?.levels.reduce<ServiceLevel | undefined>((m, l) => (!m || l.concurrency > m.concurrency ? l : m), undefined);
    if (one && top && top.concurrency > 1 && name.includes("1b")) {
      const scale = top.tokensPerSecond / one.tokensPerSecond;
      verdicts.push(`${name}: service at ${top.concurrency} = ${scale.toFixed(1)}× at 1 (target ≥ 10×: ${scale >= 10 ? "met" : "MISSED"})`);
    }
    const batchedWall = times[`batched_${name}`];
    const batchedWork = rows.reduce((sum, r) => sum + r.t, 0);
    const load = {
      llamaCppLoadSeconds: batchedWall !== undefined && rows.length > 0 ? Math.max(0, batchedWall - batchedWork) : null,
      serviceReadySeconds: svc?.readySeconds ?? null,
      serviceEngineLoadSeconds: svc?.engineLoadSeconds ?? null,
      peakGpuMiB: { llamaCpp: mem.peakMiB[`batched-bench ${name}`] ?? null, service: mem.peakMiB[`service ${name}`] ?? null },
    };
    (json.models as Record<string, unknown>)[name] = { levels: perLevel, ...load, device: svc?.device ?? null };
    verdicts.push(
      `${name}: load llama.cpp ≈ ${f(load.llamaCppLoadSeconds, 1)} s (wall − timed work, 1 s granularity), service ready ${f(load.serviceReadySeconds, 2)} s ` +
        `(engine ${f(load.serviceEngineLoadSeconds, 2)} s) on ${svc?.device ?? "—"}; peak GPU memory llama.cpp ${f(load.peakGpuMiB.llamaCpp)} MiB, ` +
        `service ${f(load.peakGpuMiB.service)} MiB (idle ${f(mem.idleMiB)} MiB)`,
    );
  }
  lines.push("", ...verdicts.map((v) => `- ${v}`), "");
  return { markdown: `${lines.join("\n")}\n`, json };
}

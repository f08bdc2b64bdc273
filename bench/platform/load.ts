/** Closed-loop load: `concurrency` loops of one operation, with warm-up, latencies and CPU per phase. */
import { SECONDS, WARMUP_SECONDS } from "./settings.js";
import { cpuDelta, cpuSnapshot, type CpuSnapshotDelta } from "./proc.js";

export interface LoadResult {
  label: string;
  ok: number;
  errors: number;
  /** status code (or error name) → count, for everything that was not the expected answer. */
  failures: Map<string, number>;
  seconds: number;
  latenciesMs: Float64Array;
  cpu?: CpuSnapshotDelta;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function summarize(r: LoadResult) {
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
export type Summary = ReturnType<typeof summarize>;

export class Recorder {
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
export async function closedLoops(
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

export function errorName(error: unknown): string {
  if (error && typeof error === "object") {
    const e = error as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof e.code === "string") return e.code;
    if (typeof e.message === "string") return e.message.slice(0, 60);
  }
  return String(error).slice(0, 60);
}

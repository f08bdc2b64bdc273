/**
 * Phase (g), streaming: time to first token and tokens/s of `POST /v1/chat/completions` with
 * `stream: true` through the gateway (admitted, queued, run by the worker, token deltas relayed
 * through Redis Streams) against the ML Service's own `/v1/chat/completions` called directly with
 * the same body, at 1 concurrent stream and at STREAM_CONCURRENCY. The difference is what the
 * platform adds to a streamed answer.
 *
 * TTFT: from the request's last byte written to the arrival of the first chunk with non-empty
 * content (the role chunk the gateway sends first carries none). Tokens: the completion_tokens of
 * the usage chunk (`stream_options.include_usage`); the worker may put several tokens in one
 * delta, so counting chunks would undercount the gateway (chunks are the fallback when a stream has
 * no usage, counted in `noUsage`). Tokens/s: every measured stream's tokens ÷ the leg's wall time.
 */
import { ML_TOKEN, PROMPT, STREAM_CONCURRENCY, STREAM_MIN_STREAMS, STREAM_SECONDS, STREAM_TOKENS, WARMUP_SECONDS, fmt, log } from "./settings.js";
import { setPhase, type Child } from "./children.js";
import { errorName, percentile } from "./load.js";
import { cpuDelta, cpuSnapshot, type CpuSnapshotDelta } from "./proc.js";
import { httpRequest } from "./raw-http.js";
import { SseConnection } from "./sse-http.js";
import type { Setup } from "./setup.js";

export type Target = "platform" | "direct";

export interface StreamLeg {
  target: Target;
  concurrency: number;
  streams: number;
  errors: number;
  failures: Record<string, number>;
  seconds: number;
  tokens: number;
  tokensPerSecond: number;
  ttftP50: number;
  ttftP90: number;
  ttftP99: number;
  /** Whole stream, request written to the answer's end. */
  durationP50: number;
  noUsage: number;
  cpu: CpuSnapshotDelta;
}

export const streamBody = JSON.stringify({
  model: "default",
  messages: [{ role: "user", content: PROMPT }],
  max_tokens: STREAM_TOKENS,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});

interface OneStream {
  ttftMs: number;
  durationMs: number;
  tokens: number;
  usage: boolean;
}

/** One streamed call on `conn`: its TTFT and tokens, or a failure (a short reason). */
async function streamOnce(conn: SseConnection, raw: Buffer): Promise<OneStream | string> {
  let firstAt = -1;
  let chunks = 0;
  let usageTokens: number | undefined;
  let done = false;
  let error: string | undefined;
  const answer = await conn.request(raw, (data, at) => {
    if (data === "[DONE]") {
      done = true;
      return;
    }
    let obj: { choices?: Array<{ delta?: { content?: unknown } }>; usage?: { completion_tokens?: unknown }; error?: { code?: unknown } };
    try {
      obj = JSON.parse(data);
    } catch {
      error ??= "unparsable chunk";
      return;
    }
    if (obj.error) error ??= `error ${String(obj.error.code)}`;
    const content = obj.choices?.[0]?.delta?.content;
    if (typeof content === "string" && content.length > 0) {
      chunks++;
      if (firstAt < 0) firstAt = at;
    }
    if (obj.usage && typeof obj.usage.completion_tokens === "number") usageTokens = obj.usage.completion_tokens;
  });
  if (answer.status !== 200 || !answer.sse) return `HTTP ${answer.status} ${answer.body.slice(0, 80)}`;
  if (error) return error;
  if (!done) return "no [DONE]";
  if (firstAt < 0) return "no content";
  return { ttftMs: firstAt - answer.writtenAt, durationMs: answer.endedAt - answer.writtenAt, tokens: usageTokens ?? chunks, usage: usageTokens !== undefined };
}

/** Closed loops of streams: warm-up, then streams started in the measured window count. */
async function runLeg(target: Target, child: Child, authorization: string, concurrency: number): Promise<StreamLeg> {
  const { port } = new URL(child.url);
  const raw = httpRequest("POST", "/v1/chat/completions", { "content-type": "application/json", authorization }, streamBody);
  const connections = Array.from({ length: concurrency }, () => new SseConnection("127.0.0.1", Number(port)));
  const failures = new Map<string, number>();
  const ok: OneStream[] = [];
  const attempt = (i: number) => streamOnce(connections[i]!, raw).catch((e: unknown) => errorName(e));
  try {
    const warmEnd = performance.now() + WARMUP_SECONDS * 1000;
    await Promise.all(connections.map(async (_, i) => {
      while (performance.now() < warmEnd) await attempt(i);
    }));
    const cpuStart = cpuSnapshot();
    const start = performance.now();
    // Fixed time, and at least STREAM_MIN_STREAMS streams (bounded at 4× the time) so that p99 is a
    // percentile and not the single slowest stream.
    let started = 0;
    const more = () => {
      const elapsed = (performance.now() - start) / 1000;
      return elapsed < STREAM_SECONDS || (started < STREAM_MIN_STREAMS && elapsed < 4 * STREAM_SECONDS);
    };
    await Promise.all(connections.map(async (_, i) => {
      while (more()) {
        started++;
        const r = await attempt(i);
        if (typeof r === "string") failures.set(r, (failures.get(r) ?? 0) + 1);
        else ok.push(r);
      }
    }));
    const seconds = (performance.now() - start) / 1000;
    const cpu = cpuDelta(cpuStart);
    const ttft = Float64Array.from(ok.map((r) => r.ttftMs)).sort();
    const durations = Float64Array.from(ok.map((r) => r.durationMs)).sort();
    const tokens = ok.reduce((sum, r) => sum + r.tokens, 0);
    return {
      target,
      concurrency,
      streams: ok.length,
      errors: [...failures.values()].reduce((a, b) => a + b, 0),
      failures: Object.fromEntries(failures),
      seconds,
      tokens,
      tokensPerSecond: tokens / seconds,
      ttftP50: percentile(ttft, 50),
      ttftP90: percentile(ttft, 90),
      ttftP99: percentile(ttft, 99),
      durationP50: percentile(durations, 50),
      noUsage: ok.filter((r) => !r.usage).length,
      cpu,
    };
  } finally {
    for (const c of connections) c.close();
  }
}

export interface StreamingReport {
  legs: StreamLeg[];
}

export async function phaseStreaming(s: Setup, gateway: Child, ml: Child): Promise<StreamingReport> {
  setPhase("g");
  const legs: StreamLeg[] = [];
  // Direct first at each concurrency, then the gateway, so each pair runs back to back.
  for (const concurrency of [...new Set([1, STREAM_CONCURRENCY])]) {
    for (const [target, child, authorization] of [["direct", ml, `Bearer ${ML_TOKEN}`], ["platform", gateway, s.authorization]] as const) {
      log(`g) ${target === "direct" ? "ML Service direct" : "gateway"}, ${concurrency} concurrent stream${concurrency > 1 ? "s" : ""} of ${STREAM_TOKENS} tokens`);
      const leg = await runLeg(target, child, authorization, concurrency);
      log(
        `g) ${leg.streams} streams, ${leg.errors} errors${leg.errors ? ` ${JSON.stringify(leg.failures)}` : ""}: TTFT p50 ${fmt(leg.ttftP50, 1)} ms, p99 ${fmt(leg.ttftP99, 1)} ms; ${fmt(leg.tokensPerSecond)} tokens/s (${fmt(leg.tokens / Math.max(1, leg.streams), 1)} per stream)`,
      );
      legs.push(leg);
    }
  }
  return { legs };
}

const legOf = (r: StreamingReport, target: Target, concurrency: number) => r.legs.find((l) => l.target === target && l.concurrency === concurrency);

/** The figures BENCH_JSON and the summary share. Added TTFT is a difference of percentiles. */
export function streamingFigures(r: StreamingReport | undefined) {
  const get = (t: Target, c: number) => (r ? legOf(r, t, c) : undefined);
  const [p1, d1, pn, dn] = [get("platform", 1), get("direct", 1), get("platform", STREAM_CONCURRENCY), get("direct", STREAM_CONCURRENCY)];
  const num = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : null);
  const diff = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? num(a - b) : null);
  return {
    stream_concurrency: STREAM_CONCURRENCY,
    stream_tokens: STREAM_TOKENS,
    // At 1 stream: what the platform adds to one answer, without queueing behind others.
    ttft_added_p50_ms: diff(p1?.ttftP50, d1?.ttftP50),
    ttft_added_p99_ms: diff(p1?.ttftP99, d1?.ttftP99),
    ttft_added_p50_ms_16: diff(pn?.ttftP50, dn?.ttftP50),
    ttft_added_p99_ms_16: diff(pn?.ttftP99, dn?.ttftP99),
    ttft_platform_p50_ms: num(p1?.ttftP50),
    ttft_platform_p99_ms: num(p1?.ttftP99),
    ttft_direct_p50_ms: num(d1?.ttftP50),
    ttft_direct_p99_ms: num(d1?.ttftP99),
    ttft_platform_p50_ms_16: num(pn?.ttftP50),
    ttft_platform_p99_ms_16: num(pn?.ttftP99),
    ttft_direct_p50_ms_16: num(dn?.ttftP50),
    ttft_direct_p99_ms_16: num(dn?.ttftP99),
    stream_tokens_per_s_platform_1: num(p1?.tokensPerSecond),
    stream_tokens_per_s_direct_1: num(d1?.tokensPerSecond),
    stream_tokens_per_s_platform_16: num(pn?.tokensPerSecond),
    stream_tokens_per_s_direct_16: num(dn?.tokensPerSecond),
    stream_tokens_ratio_1: p1 && d1 ? num(p1.tokensPerSecond / d1.tokensPerSecond) : null,
    stream_tokens_ratio_16: pn && dn ? num(pn.tokensPerSecond / dn.tokensPerSecond) : null,
    stream_errors: r ? r.legs.reduce((sum, l) => sum + l.errors, 0) : null,
  };
}

/** The table "Streaming: gateway vs ML Service direct", with its targets. */
export function streamingTable(r: StreamingReport): string {
  const f = streamingFigures(r);
  const out = [
    `${STREAM_TOKENS} tokens per stream (max_tokens, temperature 0, same body to both); TTFT from the request written to the first chunk with content; tokens/s = completion tokens (usage chunk) of every stream ÷ wall time.\n`,
    "| leg | streams | errors | TTFT p50 (ms) | TTFT p90 (ms) | TTFT p99 (ms) | stream p50 (ms) | tokens/stream | tokens/s |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const l of r.legs) {
    const name = `${l.target === "direct" ? "ML Service direct" : "gateway (platform)"} ×${l.concurrency}`;
    out.push(`| ${name} | ${fmt(l.streams)} | ${fmt(l.errors)} | ${fmt(l.ttftP50, 1)} | ${fmt(l.ttftP90, 1)} | ${fmt(l.ttftP99, 1)} | ${fmt(l.durationP50, 1)} | ${fmt(l.tokens / Math.max(1, l.streams), 1)} | ${fmt(l.tokensPerSecond)} |`);
  }
  const errors = r.legs.filter((l) => l.errors > 0 || l.noUsage > 0);
  for (const l of errors) out.push(`\n- ${l.target} ×${l.concurrency}: ${JSON.stringify(l.failures)}${l.noUsage ? `, ${l.noUsage} streams without usage (chunks counted)` : ""}`);
  const ms = (v: number | null) => (v === null ? "n/a" : `${fmt(v, 1)} ms`);
  const yes = (ok: boolean) => (ok ? "yes" : "**no**");
  out.push("\n| figure (platform − direct) | measured | target | met |\n|---|---|---|:-:|");
  out.push(`| added TTFT p50, 1 stream | ${ms(f.ttft_added_p50_ms)} | ≤ 15 ms | ${yes(f.ttft_added_p50_ms !== null && f.ttft_added_p50_ms <= 15)} |`);
  out.push(`| added TTFT p99, 1 stream | ${ms(f.ttft_added_p99_ms)} | ≤ 40 ms | ${yes(f.ttft_added_p99_ms !== null && f.ttft_added_p99_ms <= 40)} |`);
  if (STREAM_CONCURRENCY !== 1) {
    out.push(`| added TTFT p50 / p99, ${STREAM_CONCURRENCY} streams | ${ms(f.ttft_added_p50_ms_16)} / ${ms(f.ttft_added_p99_ms_16)} | (informational) | |`);
  }
  const ratio = f.stream_tokens_ratio_16;
  out.push(`| tokens/s gateway ÷ direct, ${STREAM_CONCURRENCY} streams | ${ratio === null ? "n/a" : fmt(ratio, 2)} (${fmt(f.stream_tokens_per_s_platform_16 ?? Number.NaN)} vs ${fmt(f.stream_tokens_per_s_direct_16 ?? Number.NaN)}/s) | ≥ 0.8 | ${yes(ratio !== null && ratio >= 0.8)} |`);
  out.push(
    "\nAdded TTFT is the difference of the two legs' percentiles (not a percentile of differences). A stream's time includes its TTFT and, through the gateway," +
      " the final event (published once the outcome is settled), which is why one stream's tokens/s differ more than its TTFT does.",
  );
  return out.join("\n");
}

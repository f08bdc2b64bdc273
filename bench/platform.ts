/**
 * Platform benchmark (`npm run bench`), on the real servers (issue 3, item 9; g and b2: issue 7,
 * item 8). One run prints, in this order (b2 last):
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
 *  e) each child process's peak RSS (VmHWM, sampled from /proc) and CPU use per phase;
 *  f) the ML Service alone: POST /inference with the drained requests' body at the drain's
 *     concurrency (the worker's prefetch), once right before the drain (f0) and once after it (f),
 *     and end to end (d) ÷ the mean of the two; with the platform's CPU per completed request
 *     (every process but the ML Service and the load generator);
 *  f2) the ML Service alone with a paced NDJSON call (stream: true, stream_interval_ms 250; the worker's
 *     call for clients not streaming until it cancelled whole answers by id), same concurrency: the
 *     streamed protocol's cost to the model (`drain_vs_ml_alone_paced`);
 *  g) streaming (ml-service, worker and collector running): POST /v1/chat/completions with
 *     `stream: true` through the gateway vs the ML Service's own /v1/chat/completions called directly
 *     (internal token), same body (one user message, max_tokens BENCH_STREAM_TOKENS, temperature 0,
 *     include_usage), at 1 and at BENCH_STREAM_CONCURRENCY concurrent streams: TTFT (request written
 *     → first chunk with content) p50/p99 for both, the added TTFT (difference of percentiles) and
 *     tokens/s (usage completion_tokens of all streams ÷ wall time) with the ratio at 16;
 *  h) the queue estimate at steady load: each admission's estimated start against its actual start,
 *     with a deep backlog (h: waits of some 0.4 s) and a shallow one (h2: some 0.1 s);
 *  i) batches: a BENCH_BATCH_LINES-line batch vs the same requests sent one by one through
 *     /api/v1/inference (`batch_vs_single_ratio`), and another tenant's interactive queue wait during
 *     a second batch of half the lines (`interactive_wait_p99_during_batch_ms`; its idle wait for
 *     comparison); the gateway runs with BATCH_DISPATCH_CONCURRENCY = BENCH_BATCH_DISPATCH_CONCURRENCY (2 × BENCH_WORKER_PREFETCH)
 *     (see bench/platform/batch.ts);
 *     With it, what tracing costs an admission while it is off (bench/platform/tracing-off.ts):
 *     the calls admission makes into the tracing module, timed against none, ÷ the gateway's CPU
 *     per admitted request (`tracing_off_admission_share`);
 *  b1) (b) again, right before (b2), so the two are compared in the same conditions;
 *  b2) the OpenAI door's admission: POST /v1/responses with `background: true` (answered "queued" at
 *     admission; a non-streamed /v1/chat/completions would hold its connection until completion, and
 *     both share admission.ts), same raw client, connections and closed loops as (b), and its
 *     throughput ÷ (b)'s. It runs last, after the worker is stopped, so that the queue fills as in
 *     (b) and (d)'s exactly-once checks and (f)'s like-for-like comparison keep (b)'s requests
 *     alone (background responses are token-streamed, which would change the drain's work); its
 *     requests are never run: the cleanup deletes their queue with the rest. With
 *     BENCH_SKIP_DRAIN=1 it runs right after (c).
 *
 * Everything is private to the run: a PostgreSQL schema, queue names and a Redis key prefix, all
 * removed at the end (also on error or Ctrl-C); child processes are stopped with SIGTERM.
 *
 * Files by concern (bench/platform/): settings, load (closed loops, latencies), raw-http (the load
 * generator's client), proc (CPU and memory from /proc), children (component processes), setup
 * (what the run owns, and its cleanup), phases (a–c, b2), drain (d), ml-alone (f), streaming (g, and
 * its table), estimate (h), batch (i), sse-http (g's streaming client: chunked body and SSE parsed as bytes arrive), report
 * (tables, JSON).
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
 *   BENCH_SKIP_DRAIN=1     stop after (c) (then b2; no d, f, g)
 *   BENCH_STREAM_TOKENS    max_tokens of each stream in (g) (default 64)
 *   BENCH_STREAM_CONCURRENCY  the larger concurrency of (g); the smaller is 1 (default 16)
 *   BENCH_STREAM_SECONDS   measured seconds per leg of (g) (default BENCH_SECONDS)
 *   BENCH_STREAM_MIN_STREAMS  a leg of (g) also runs until this many streams have started, up to
 *                          4 × BENCH_STREAM_SECONDS, so that p99 is not one sample (default 100)
 *   BENCH_SKIP_STREAMING=1 leave out (g)
 *   BENCH_ESTIMATE_CLIENTS clients of (h) (default 256), each polling every BENCH_ESTIMATE_POLL_MS (50);
 *   BENCH_ESTIMATE_SHALLOW_CLIENTS and _POLL_MS the same for (h2) (96, 20; 0 clients leaves h2 out);
 *   BENCH_ESTIMATE_WARMUP_S their load before each measures (default 6)
 *   BENCH_BATCH_LINES      lines of the batch in (i), and requests of its one-by-one twin (default 10000)
 *   BENCH_BATCH_TIMEOUT_S  bound on each leg of (i) (default 240)
 *   BENCH_BATCH_DISPATCH_CONCURRENCY  the gateway's BATCH_DISPATCH_CONCURRENCY (default 2 × BENCH_WORKER_PREFETCH)
 *   BENCH_SKIP_BATCH=1     leave out (i)
 *   BENCH_CPU_PROF=gateway,api-service,...   run those children with --cpu-prof (profiles in
 *                          BENCH_CPU_PROF_DIR, default ./data/bench-profiles)
 *   BENCH_WORKER_PREFETCH  the worker's prefetch in (d), also the concurrency of (f) (default 32)
 *   BENCH_COLLECTOR_PREFETCH  the collector's prefetch in (d) (default 128)
 *   BENCH_JSON=path        also write the figures as JSON (with platform_cpu_us_per_request,
 *                          drain_vs_ml_alone, drain_vs_ml_alone_paced, v1_admission_ratio, ttft_added_p50_ms and _p99_ms (at
 *                          1 stream; _16 at the larger concurrency), stream_tokens_ratio_16, and
 *                          the raw TTFT and tokens/s figures of each leg)
 *   BENCH_SCHEDULING=requests  start each component with the CFS weight (nice) its manifest's CPU
 *                          request gives it against the ML Service's, as the kubelet weights pods
 *                          that share a node (default equal: every process the same weight)
 *   BENCH_CHILD_NODE_OPTIONS  NODE_OPTIONS for the child processes (e.g. --max-old-space-size=96)
 *   (the components run from dist/, built by the bench first, as the image runs them)
 *   BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_AMQP_URL   the servers (defaults: local test servers)
 *   BENCH_MODEL            GGUF for the ML Service (default ../shared/models/stories260K.gguf)
 */
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { BATCH_DISPATCH_CONCURRENCY, CONNECTIONS, ESTIMATE_CLIENTS, ESTIMATE_POLL_MS, ESTIMATE_SHALLOW_CLIENTS, ESTIMATE_SHALLOW_POLL_MS, KEY_PREFIX, MAX_LENGTH, MODEL, QUEUES, RUN, SCHEMA, SECONDS, SKIP_BATCH, SKIP_DRAIN, SKIP_STREAMING, WARMUP_SECONDS, WORKER_PREFETCH, fmt, log } from "./platform/settings.js";
import { children, sampleMemory, startChild, stopChild } from "./platform/children.js";
import { cleanup, setup } from "./platform/setup.js";
import { summarize } from "./platform/load.js";
import { phaseAdmission, phaseAdmissionAgain, phaseCeiling, phaseStatus, phaseV1Admission } from "./platform/phases.js";
import { phaseDrain, type DrainReport } from "./platform/drain.js";
import { phaseMlAlone } from "./platform/ml-alone.js";
import { phaseEstimate, type EstimateReport } from "./platform/estimate.js";
import { phaseBatch, type BatchReport } from "./platform/batch.js";
import { phaseTracingOff } from "./platform/tracing-off.js";
import { phaseStreaming, streamingFigures, type StreamingReport } from "./platform/streaming.js";
import { benchJson, renderReport } from "./platform/report.js";

async function main(): Promise<number> {
  if (!existsSync(MODEL) && !SKIP_DRAIN) throw new Error(`model not found at ${MODEL} (BENCH_MODEL); set BENCH_SKIP_DRAIN=1 to stop after (c)`);
  log(`run ${RUN}: schema ${SCHEMA}, queues ${QUEUES.requests}/${QUEUES.results}, key prefix ${KEY_PREFIX}`);
  log(`${SECONDS} s per phase (+${WARMUP_SECONDS} s warm-up), ${CONNECTIONS} connections, max_length ${MAX_LENGTH}`);
  const runStarted = performance.now();
  log("building dist/ (npm run build)");
  execFileSync("npm", ["run", "build", "--silent"], { stdio: ["ignore", "ignore", "inherit"] });
  const s = await setup();
  const sampler = setInterval(sampleMemory, 200);
  sampler.unref();
  try {
    log("starting gateway, api-service" + (SKIP_DRAIN ? "" : " and ml-service (idle until d)"));
    const [gateway, api, ml] = await Promise.all([
      // Batch lines in flight: as many as the worker holds (its prefetch), so that a batch keeps it as
      // busy as a deep queue does (phase i).
      startChild("gateway", { BATCH_DISPATCH_CONCURRENCY: String(BATCH_DISPATCH_CONCURRENCY) }),
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

    const gatewayCpu = admission.result.cpu?.byGroup.gateway;
    const tracingOff = await phaseTracingOff(gatewayCpu === undefined ? Number.NaN : ((gatewayCpu / 100) * admission.result.cpu!.seconds * 1e6) / admission.result.ok);
    log(`b) tracing off adds ${fmt(tracingOff.addedNsPerAdmission)} ns to an admission: ${fmt(tracingOff.share * 100, 3)} % of the gateway's ${fmt(tracingOff.gatewayUsPerAdmission)} µs`);

    log("c) status lookups");
    const status = await phaseStatus(api, s);
    const c = summarize(status);
    log(`c) ${fmt(c.throughput)}/s, p50 ${fmt(c.p50, 2)} ms, p99 ${fmt(c.p99, 2)} ms`);

    let drain: DrainReport | undefined;
    let mlAlone;
    let mlAloneBefore;
    let mlAlonePaced;
    let streaming: StreamingReport | undefined;
    let estimate: EstimateReport | undefined;
    let estimateShallow: EstimateReport | undefined;
    let batch: BatchReport | undefined;
    if (ml) {
      log("f0) the ML Service alone before the drain, on the requests it will drain");
      mlAloneBefore = await phaseMlAlone(s, ml, "before");
      log(`f0) ${fmt(summarize(mlAloneBefore).throughput)}/s`);
      log("d) drain: every admitted request must complete exactly once");
      drain = await phaseDrain(s, admission.admitted);
      log("f) the ML Service alone, same requests and concurrency");
      mlAlone = await phaseMlAlone(s, ml);
      const bracketing = (summarize(mlAloneBefore).throughput + summarize(mlAlone).throughput) / 2;
      log(`f) ${fmt(summarize(mlAlone).throughput)}/s; end to end ÷ ML Service alone (mean of f0 and f, ${fmt(bracketing)}/s) ${fmt(drain.rate / bracketing, 2)}`);
      log("f2) the ML Service alone with a paced NDJSON call (the streamed protocol's cost)");
      mlAlonePaced = await phaseMlAlone(s, ml, "paced");
      log(`f2) ${fmt(summarize(mlAlonePaced).throughput)}/s; end to end ÷ that ${fmt(drain.rate / summarize(mlAlonePaced).throughput, 2)}`);
      if (!SKIP_STREAMING) {
        log("g) streaming: gateway /v1/chat/completions vs the ML Service's own, stream: true");
        streaming = await phaseStreaming(s, gateway, ml);
        const g = streamingFigures(streaming);
        log(`g) added TTFT p50 ${fmt(g.ttft_added_p50_ms ?? Number.NaN, 1)} ms, p99 ${fmt(g.ttft_added_p99_ms ?? Number.NaN, 1)} ms; tokens/s ratio at ${g.stream_concurrency} ${fmt(g.stream_tokens_ratio_16 ?? Number.NaN, 2)}`);
      }
      log(`h) the queue estimate at steady load, a deep backlog (${ESTIMATE_CLIENTS} clients): predicted vs actual start`);
      estimate = await phaseEstimate(s, gateway, api, { clients: ESTIMATE_CLIENTS, pollMs: ESTIMATE_POLL_MS, phase: "h" });
      if (ESTIMATE_SHALLOW_CLIENTS > 0) {
        log(`h2) the same with a shallow backlog (${ESTIMATE_SHALLOW_CLIENTS} clients)`);
        estimateShallow = await phaseEstimate(s, gateway, api, { clients: ESTIMATE_SHALLOW_CLIENTS, pollMs: ESTIMATE_SHALLOW_POLL_MS, phase: "h2" });
      }
      if (!SKIP_BATCH) {
        log("i) a batch vs the same requests one by one, and a second tenant's interactive requests during it");
        batch = await phaseBatch(s, gateway, api);
      }
      // (b2) needs the queue unconsumed, as (b) had it; the drain's checks are done by now.
      const worker = children.get("worker");
      if (worker) {
        log("stopping the worker for (b2)");
        await stopChild(worker);
      }
    }

    // (b2) runs last (see the header): its requests are not drained, the cleanup deletes their queue.
    log("b1) admission through POST /api/v1/inference again, in (b2)'s conditions");
    const again = await phaseAdmissionAgain(gateway, s);
    const b1 = summarize(again.result);
    log(`b1) ${fmt(b1.throughput)}/s, p50 ${fmt(b1.p50, 2)} ms, p99 ${fmt(b1.p99, 2)} ms`);
    log("b2) admission through POST /v1/responses (background: true), workers not running");
    const v1 = await phaseV1Admission(gateway, s);
    const b2 = summarize(v1.result);
    log(`b2) ${fmt(b2.throughput)}/s, p50 ${fmt(b2.p50, 2)} ms, p99 ${fmt(b2.p99, 2)} ms — ${fmt(b2.throughput / b1.throughput, 2)} of (b1)`);
    sampleMemory();

    const figures = { ceiling, admission: admission.result, tracingOff, status, drain, mlAlone, mlAloneBefore, mlAlonePaced, estimate, estimateShallow, batch, admissionAgain: again.result, v1Admission: v1.result, streaming, runSeconds: (performance.now() - runStarted) / 1000 };
    process.stdout.write(renderReport(figures));
    if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, benchJson(figures));
    return (drain && !drain.checks.every((ch) => ch.ok)) || (batch && !batch.exactlyOnce) ? 1 : 0;
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

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
 *  e) each child process's peak RSS (VmHWM, sampled from /proc) and CPU use per phase;
 *  f) the ML Service alone: POST /inference with the drained requests' body at the drain's
 *     concurrency (the worker's prefetch), and end to end (d) ÷ ML Service alone; with the platform's
 *     CPU per completed request (every process but the ML Service and the load generator).
 *
 * Everything is private to the run: a PostgreSQL schema, queue names and a Redis key prefix, all
 * removed at the end (also on error or Ctrl-C); child processes are stopped with SIGTERM.
 *
 * Files by concern (bench/platform/): settings, load (closed loops, latencies), raw-http (the load
 * generator's client), proc (CPU and memory from /proc), children (component processes), setup
 * (what the run owns, and its cleanup), phases (a–c), drain (d), ml-alone (f), report (tables, JSON).
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
 *   BENCH_WORKER_PREFETCH  the worker's prefetch in (d), also the concurrency of (f) (default 32)
 *   BENCH_COLLECTOR_PREFETCH  the collector's prefetch in (d) (default 128)
 *   BENCH_JSON=path        also write the figures as JSON (with platform_cpu_us_per_request and
 *                          drain_vs_ml_alone)
 *   BENCH_CHILD_NODE_OPTIONS  NODE_OPTIONS for the child processes (e.g. --max-old-space-size=96)
 *   (the components run from dist/, built by the bench first, as the image runs them)
 *   BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_AMQP_URL   the servers (defaults: local test servers)
 *   BENCH_MODEL            GGUF for the ML Service (default ../shared/models/stories260K.gguf)
 */
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { CONNECTIONS, KEY_PREFIX, MAX_LENGTH, MODEL, QUEUES, RUN, SCHEMA, SECONDS, SKIP_DRAIN, WARMUP_SECONDS, fmt, log } from "./platform/settings.js";
import { children, sampleMemory, startChild } from "./platform/children.js";
import { cleanup, setup } from "./platform/setup.js";
import { summarize } from "./platform/load.js";
import { phaseAdmission, phaseCeiling, phaseStatus } from "./platform/phases.js";
import { phaseDrain, type DrainReport } from "./platform/drain.js";
import { phaseMlAlone } from "./platform/ml-alone.js";
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
    let mlAlone;
    if (ml) {
      log("d) drain: every admitted request must complete exactly once");
      drain = await phaseDrain(s, admission.admitted);
      log("f) the ML Service alone, same requests and concurrency");
      mlAlone = await phaseMlAlone(s, ml);
      log(`f) ${fmt(summarize(mlAlone).throughput)}/s; end to end ÷ ML Service alone ${fmt(drain.rate / summarize(mlAlone).throughput, 2)}`);
    }
    sampleMemory();

    const figures = { ceiling, admission: admission.result, status, drain, mlAlone, runSeconds: (performance.now() - runStarted) / 1000 };
    process.stdout.write(renderReport(figures));
    if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, benchJson(figures));
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

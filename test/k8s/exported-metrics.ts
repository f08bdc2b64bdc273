/**
 * What the code really exports: the platform started in-process (gateway, api-service, worker,
 * collector and an ML Service running the shared model, embedded backend), driven through the
 * situations the dashboard and the alerts watch (a completed request, a quota rejection, a failed
 * model call, unreadable messages, a batch run by the gateway's dispatcher, the quota store gone),
 * then scraped at every /metrics.
 */
import OpenAI, { toFile } from "openai";
import { startPlatform, submit, waitForFinal } from "../support/platform.js";
import type { Matcher, MetricCatalog, Selector } from "./promql.js";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family name → its TYPE (counter, gauge, histogram, …). */
  families: Map<string, string>;
  samples: Sample[];
}

/** Labels a PodMonitor scrape adds to every series (Prometheus Operator): never in /metrics itself. */
export const TARGET_LABELS: ReadonlySet<string> = new Set(["job", "instance", "namespace", "pod", "container", "endpoint"]);
/** Series Prometheus writes itself for every target. */
export const SYNTHETIC_METRICS = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

/** Parses the Prometheus text format (what prom-client serves). Throws on a line it cannot read. */
export function parseExposition(text: string): Exposition {
  const families = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      families.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`unreadable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let p: RegExpExecArray | null;
    let consumed = 0;
    while ((p = pair.exec(body))) {
      labels[p[1]!] = p[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      consumed = pair.lastIndex;
    }
    if (consumed !== body.length) throw new Error(`unreadable labels in: ${line}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { families, samples };
}

/** The catalog the PromQL checks use: every sample name (histograms' _bucket/_sum/_count included). */
export function catalogOf(expositions: Exposition[]): MetricCatalog & { names(): string[] } {
  const labels = new Map<string, Set<string>>();
  const add = (name: string, names: Iterable<string> = []) => {
    const set = labels.get(name) ?? new Set<string>();
    for (const n of names) set.add(n);
    labels.set(name, set);
  };
  for (const e of expositions) {
    for (const [family, type] of e.families) {
      if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) add(family + suffix, suffix === "_bucket" ? ["le"] : []);
      else if (type === "summary") for (const suffix of ["", "_sum", "_count"]) add(family + suffix);
      else add(family);
    }
    for (const s of e.samples) add(s.name, Object.keys(s.labels));
  }
  for (const name of SYNTHETIC_METRICS) add(name);
  return {
    labelsOf: (name) => labels.get(name),
    targetLabels: TARGET_LABELS,
    names: () => [...labels.keys()].sort(),
  };
}

function matches(m: Matcher, value: string | undefined): boolean {
  const v = value ?? "";
  if (m.op === "=") return v === m.value;
  if (m.op === "!=") return v !== m.value;
  const re = new RegExp(`^(?:${m.value})$`);
  return m.op === "=~" ? re.test(v) : !re.test(v);
}

/**
 * The samples a selector picks out of a scrape. Matchers on target labels are left out (the scrape
 * here has none; the job values are checked against the PodMonitor instead).
 */
export function seriesFor(selector: Selector, expositions: Exposition[]): Sample[] {
  return expositions
    .flatMap((e) => e.samples)
    .filter((s) => s.name === selector.name && selector.matchers.every((m) => m.label === "__name__" || TARGET_LABELS.has(m.label) || matches(m, s.labels[m.label])));
}

export function isSynthetic(name: string | undefined): boolean {
  return name !== undefined && SYNTHETIC_METRICS.includes(name);
}

async function scrape(url: string): Promise<Exposition> {
  const response = await fetch(`${url}/metrics`);
  if (response.status !== 200) throw new Error(`${url}/metrics answered ${response.status}`);
  return parseExposition(await response.text());
}

/** Polls a scrape until `done` holds (a condition, not a sleep standing in for one). */
async function scrapeUntil(url: string, what: string, done: (e: Exposition) => boolean, timeoutMs = 30_000): Promise<Exposition> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await scrape(url);
    if (done(e)) return e;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} on ${url}/metrics`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const has = (name: string, labels: Record<string, string> = {}) => (e: Exposition) =>
  e.samples.some((s) => s.name === name && s.value > 0 && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/**
 * Runs the two platforms (one with a working ML Service, one whose ML Service URL is a closed port)
 * through the traffic above and returns what their /metrics endpoints served at the end.
 */
export async function exportedMetrics(): Promise<Exposition[]> {
  const out: Exposition[] = [];
  const platform = await startPlatform({ backend: "embedded" });
  try {
    const user = await platform.createUser();
    const accepted = await submit(platform.url, { prompt: "Once upon a time", max_length: 8 }, user.authorization);
    if (accepted.status !== 202) throw new Error(`submit answered ${accepted.status}: ${JSON.stringify(accepted.body)}`);
    await waitForFinal(platform.url, accepted.body.request_id as string, user.authorization, 60_000);

    const limited = await platform.createUser({ dailyRequests: 0 });
    const rejected = await submit(platform.url, { prompt: "over quota", max_length: 8 }, limited.authorization);
    if (rejected.status !== 429) throw new Error(`a user with no requests left got ${rejected.status}`);

    // A batch, run by the gateway's own dispatcher: its lines and the batch are counted.
    const openai = new OpenAI({ baseURL: `${platform.url}/v1`, apiKey: user.authorization.replace(/^Bearer /, ""), maxRetries: 0 });
    const line = { custom_id: "m", method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 } };
    const file = await openai.files.create({ file: await toFile(Buffer.from(JSON.stringify(line)), "in.jsonl"), purpose: "batch" });
    await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await scrapeUntil(platform.url, "the batch finished", (e) => has("batches_finished_total", { status: "completed" })(e) && has("batch_lines_total", { outcome: "completed" })(e), 60_000);

    // Unreadable messages on both queues: the worker and the collector dead-letter them.
    await platform.queue.publish(platform.queues.requests, Buffer.from("not a request"));
    await platform.queue.publish(platform.queues.results, Buffer.from("not an outcome"));
    await scrapeUntil(platform.url, "both dead letters", (e) =>
      [platform.queues.requests, platform.queues.results].every((queue) => has("messages_dead_lettered_total", { queue })(e)),
    );

    // The ML Service refusing a body it cannot read.
    const bad = await fetch(`${platform.mlUrl}/inference`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    if (bad.status !== 400) throw new Error(`the ML Service answered ${bad.status} to a broken body`);
    out.push(await scrape(platform.mlUrl));

    // The quota store gone: admissions and the quota page answer 503.
    await platform.quota.close();
    const unavailable = await submit(platform.url, { prompt: "no quota store", max_length: 8 }, user.authorization);
    if (unavailable.status !== 503) throw new Error(`admission without a quota store answered ${unavailable.status}`);
    const quotaPage = await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization: user.authorization } });
    if (quotaPage.status !== 503) throw new Error(`/api/v1/quota without a quota store answered ${quotaPage.status}`);
    out.push(await scrape(platform.url));
  } finally {
    await platform.stop();
  }

  // A worker whose ML Service cannot be reached: retried, then failed (attempts_exhausted).
  const unreachable = await startPlatform({ backend: "embedded", mlServiceUrl: "http://127.0.0.1:1" });
  try {
    const user = await unreachable.createUser();
    const r = await submit(unreachable.url, { prompt: "nobody answers", max_length: 8 }, user.authorization);
    if (r.status !== 202) throw new Error(`submit answered ${r.status}`);
    const final = await waitForFinal(unreachable.url, r.body.request_id as string, user.authorization, 60_000);
    if (final.status !== "failed") throw new Error(`a request with no ML Service ended ${final.status}`);
    out.push(await scrapeUntil(unreachable.url, "the failed outcome", has("worker_outcomes_total", { status: "failed" })));
  } finally {
    await unreachable.stop();
  }
  return out;
}

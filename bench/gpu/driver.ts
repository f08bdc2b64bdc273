/**
 * The Node side of the GPU benchmark, bundled into .gpu-pack/app/driver.mjs (no tsx on the device):
 *   models  --dir D --set gpu|cpu [--stories P] --out models.json   write the generated models
 *   list    --models models.json                                     one "name path pp tg rounds" line each
 *   service --main main.mjs --model P --name N --gpu cuda|cpu ...     the ML Service over HTTP at each level
 *   report  --dir OUT --mode cuda|cpu [--manifest M]                 results.md / results.json, table printed
 * The service runs as its own process (`node main.mjs ml-service`, configured by environment as in
 * production); requests stream NDJSON from POST /inference, so time to first token is read per request.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureDistilgpt2SizedModel, ensureLlama1bModel } from "./models.js";
import { summarize, type BatchedRow, type ServiceResult, type ServiceLevel, type ModelEntry } from "./report.js";

/** The ML Service runs alone here, so it demands an internal token; this run makes its own. */
const INTERNAL_TOKEN = `gpu-bench-${process.pid}-${Date.now().toString(36)}`;

const log = (msg: string) => process.stderr.write(`[driver] ${msg}\n`);

/** Prompts of 16 GPT-2 tokens or so, varied so no prefix cache helps one request over another. */
const PROMPTS = [
  "Once upon a time there was a little girl who lived in a small house near the",
  "The little dog ran across the big green field to find his friend, who was",
  "One day, a girl named Sue went to the market with her mother to buy some",
  "Tom and his mom went to the park on a sunny day and they saw a big red",
  "There was a big red ball in the garden, and all the children wanted to play",
  "The sun was shining and the birds were singing when the old man opened his",
  "A cat sat on the mat by the window and watched the rain fall on the quiet",
  "Lily wanted to play outside, but her brother said that it was too cold and",
];

async function models(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { dir: { type: "string" }, set: { type: "string" }, stories: { type: "string" }, out: { type: "string" } } });
  const dir = resolve(values.dir ?? "models");
  mkdirSync(dir, { recursive: true });
  const entries: ModelEntry[] = [];
  const add = async (name: string, make: () => Promise<string>, pp: number, tg: number, rounds: number) => {
    const t0 = performance.now();
    const path = await make();
    const seconds = (performance.now() - t0) / 1000;
    entries.push({ name, path, bytes: statSync(path).size, generateSeconds: seconds, pp, tg, rounds });
    log(`${name}: ${path} (${(statSync(path).size / 1e6).toFixed(0)} MB) in ${seconds.toFixed(1)} s`);
  };
  if (values.set === "gpu") {
    await add("distilgpt2-q8_0", () => ensureDistilgpt2SizedModel(dir), 16, 128, 2);
    await add("llama-1b-f16", () => ensureLlama1bModel(dir), 16, 128, 2);
  } else if (values.set === "cpu") {
    const stories = resolve(values.stories ?? "../shared/models/stories260K.gguf");
    if (!existsSync(stories)) throw new Error(`stories260K not found at ${stories} (--stories)`);
    await add("stories260K", async () => stories, 16, 32, 1);
    // The 1B model's F16 path at a shape a CPU check can afford: same writer, same vocabulary.
    const tiny = { embedding: 256, layers: 2, heads: 8, kvHeads: 2, feedForward: 704, contextLength: 1024 };
    await add("llama-tiny-f16", () => ensureLlama1bModel(dir, "llama-tiny-f16-v1.gguf", tiny), 16, 16, 1);
  } else throw new Error("models: --set gpu|cpu");
  writeFileSync(values.out ?? join(dir, "models.json"), `${JSON.stringify(entries, null, 2)}\n`);
}

function list(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { models: { type: "string" } } });
  const entries = JSON.parse(readFileSync(values.models ?? "models.json", "utf8")) as ModelEntry[];
  for (const e of entries) process.stdout.write(`${e.name}\t${e.path}\t${e.pp}\t${e.tg}\t${e.rounds}\n`);
}

interface OneResult {
  tokens: number;
  ttftMs: number;
}

/** One streamed request: counts completion tokens from the final record, TTFT from the first token line. */
async function streamOne(url: string, prompt: string, maxTokens: number): Promise<OneResult> {
  const t0 = performance.now();
  const res = await fetch(`${url}/inference`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${INTERNAL_TOKEN}` },
    body: JSON.stringify({ prompt, max_length: maxTokens, temperature: 0, repetition_penalty: 1, stream: true }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttftMs = -1;
  let buffered = "";
  let tokens = -1;
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk as Uint8Array, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.trim()) continue;
      const record = JSON.parse(line) as { token?: string; is_finished?: boolean; token_usage?: { completion_tokens: number }; error?: unknown };
      if (record.error) throw new Error(`stream error: ${JSON.stringify(record.error)}`);
      if (ttftMs < 0 && record.token) ttftMs = performance.now() - t0;
      if (record.is_finished) tokens = record.token_usage?.completion_tokens ?? 0;
    }
  }
  if (tokens < 0) throw new Error("stream ended without a final record");
  return { tokens, ttftMs: ttftMs < 0 ? performance.now() - t0 : ttftMs };
}

async function level(url: string, concurrency: number, rounds: number, maxTokens: number): Promise<ServiceLevel> {
  const ttfts: number[] = [];
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
      let n = 0;
      for (let r = 0; r < rounds; r++) {
        const one = await streamOne(url, PROMPTS[(c + r) % PROMPTS.length] as string, maxTokens);
        n += one.tokens;
        ttfts.push(one.ttftMs);
      }
      return n;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const tokens = counts.reduce((a, b) => a + b, 0);
  ttfts.sort((a, b) => a - b);
  return { concurrency, requests: concurrency * rounds, tokens, seconds, tokensPerSecond: tokens / seconds, ttftMedianMs: ttfts[Math.floor(ttfts.length / 2)] ?? 0, ttftMaxMs: ttfts[ttfts.length - 1] ?? 0 };
}

async function service(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      main: { type: "string" }, model: { type: "string" }, name: { type: "string" }, gpu: { type: "string" }, levels: { type: "string" },
      "max-tokens": { type: "string" }, rounds: { type: "string" }, context: { type: "string" }, threads: { type: "string" },
      work: { type: "string" }, out: { type: "string" }, port: { type: "string" },
    },
  });
  const levels = (values.levels ?? "1,16,64").split(",").map(Number);
  const maxLevel = Math.max(...levels);
  const maxTokens = Number(values["max-tokens"] ?? 128);
  const rounds = Number(values.rounds ?? 2);
  const port = Number(values.port ?? 18081);
  const work = resolve(values.work ?? ".");
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    MODEL: resolve(values.model ?? ""),
    MODEL_NAME: values.name ?? "bench",
    DATA_DIR: join(work, "data"),
    ML_GPU: values.gpu === "cpu" ? "cpu" : "cuda",
    ML_THREADS: values.threads ?? "4",
    ML_CONTEXT_SIZE: values.context ?? "256",
    ML_BATCH_SEQUENCES: String(maxLevel),
    ML_QUEUE_LIMIT: String(maxLevel * 4),
    ML_MAX_TOKENS_LIMIT: String(Math.max(4096, maxTokens)),
    LOG_LEVEL: "warn",
    // Run alone, the ML Service demands its internal token on every model route.
    ML_SERVICE_TOKEN: INTERNAL_TOKEN,
  };
  const t0 = performance.now();
  const child = spawn(process.execPath, [resolve(values.main ?? "main.mjs"), "ml-service"], { env, stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<number>((r) => child.on("exit", (code) => r(code ?? 1)));
  const url = `http://127.0.0.1:${port}`;
  try {
    let health: { device?: string; load_seconds?: number } = {};
    for (;;) {
      if (child.exitCode !== null) throw new Error(`ml-service exited with ${child.exitCode} while loading`);
      if (performance.now() - t0 > 300_000) throw new Error("ml-service not ready in 300 s");
      try {
        const res = await fetch(`${url}/health`);
        const body = (await res.json()) as typeof health & { status?: string; error?: unknown };
        if (res.status === 200) {
          health = body;
          break;
        }
        if (body.status === "failed") throw new Error(`model load failed: ${JSON.stringify(body.error)}`);
      } catch (error) {
        if ((error as Error).message.startsWith("model load failed")) throw error;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const readySeconds = (performance.now() - t0) / 1000;
    log(`${values.name}: ready in ${readySeconds.toFixed(2)} s on ${health.device} (engine load ${health.load_seconds} s)`);
    await streamOne(url, "warm up", 8);
    const results: ServiceLevel[] = [];
    for (const c of levels) {
      const r = await level(url, c, c === 1 ? rounds + 1 : rounds, maxTokens);
      log(`${values.name} c=${c}: ${r.tokensPerSecond.toFixed(1)} tok/s, TTFT median ${r.ttftMedianMs.toFixed(0)} ms (${r.tokens} tokens, ${r.seconds.toFixed(2)} s)`);
      results.push(r);
    }
    const out: ServiceResult = { name: values.name ?? "", device: health.device ?? "?", readySeconds, engineLoadSeconds: health.load_seconds ?? null, maxTokens, levels: results };
    writeFileSync(values.out ?? "service.json", `${JSON.stringify(out, null, 2)}\n`);
  } finally {
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

function report(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { dir: { type: "string" }, mode: { type: "string" }, manifest: { type: "string" } } });
  const dir = resolve(values.dir ?? ".");
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "");
  const models = [...new Set([...read("times.tsv").matchAll(/^batched_(\S+)\t/gm)].map((m) => m[1] as string))];
  const batched: Record<string, BatchedRow[]> = {};
  const services: Record<string, ServiceResult> = {};
  for (const m of models) {
    batched[m] = read(`batched-${m}.jsonl`).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as BatchedRow);
    const s = read(`service-${m}.json`);
    if (s) services[m] = JSON.parse(s) as ServiceResult;
  }
  const manifest = values.manifest && existsSync(values.manifest) ? (JSON.parse(readFileSync(values.manifest, "utf8")) as { totalBytes?: number }) : {};
  const { markdown, json } = summarize({
    mode: values.mode ?? "cuda",
    times: read("times.tsv"),
    gpu: read("gpu.txt").trim(),
    gpuMem: read("gpu-mem.csv"),
    phases: read("phases.tsv"),
    batched,
    services,
    packBytes: manifest.totalBytes,
  });
  writeFileSync(join(dir, "results.md"), markdown);
  writeFileSync(join(dir, "results.json"), `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(markdown);
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (argv: string[]) => unknown> = { models, list, service, report };
const run = command ? commands[command] : undefined;
if (!run) {
  process.stderr.write("usage: driver.mjs models|list|service|report [options]\n");
  process.exit(2);
}
Promise.resolve(run(rest)).then(
  () => process.exit(0),
  (error: unknown) => {
    log(String(error instanceof Error ? error.stack : error));
    process.exit(1);
  },
);

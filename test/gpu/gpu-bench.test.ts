/**
 * The GPU benchmark's preparation, checked without a GPU and in a few seconds: the device script's
 * argument handling (dry runs build nothing), the packed dependency closure, the generated F16
 * model's shape and determinism, and the report's arithmetic and verdicts. The full CPU build of
 * the same steps is `npm run gpu:check`, not part of `npm test`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RESUME_FROM, dependencyClosure } from "../../bench/gpu/pack.js";
import { f16Contents, llama1bSpec, parameterCount, randomF16 } from "../../bench/gpu/models.js";
import { anchorTokensPerSecond, gpuMemoryByPhase, summarize, type BatchedRow, type ServiceResult } from "../../bench/gpu/report.js";

const SCRIPT = join(import.meta.dirname, "../../bench/gpu/device.sh");
const device = (...args: string[]) => spawnSync("bash", [SCRIPT, ...args], { encoding: "utf8", env: { ...process.env, OUT: "" } });

test("device.sh --help lists the options and exits 0", () => {
  const r = device("--help");
  assert.equal(r.status, 0);
  for (const flag of ["--cpu", "--pack", "--work", "--jobs", "--steps", "--levels", "--deadline", "--dry-run"]) assert.match(r.stdout, new RegExp(flag));
});

test("device.sh refuses bad arguments with status 2 and a message naming them", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--bogus"], /unknown argument: --bogus/],
    [["--jobs", "0"], /--jobs must be a positive integer/],
    [["--jobs", "four"], /--jobs must be a positive integer/],
    [["--levels", "1,,64"], /--levels must be like 1,16,64/],
    [["--steps", "unpack,fly"], /unknown step 'fly'/],
    [["--deadline", "-5"], /--deadline must be a positive integer/],
    [["--pack"], /--pack needs a value/],
  ];
  for (const [args, message] of cases) {
    const r = device(...args);
    assert.equal(r.status, 2, `${args.join(" ")} → ${r.status}`);
    assert.match(r.stderr, message);
  }
});

test("a dry run prints the CUDA plan (sm_90 only) or the CPU plan, and creates nothing", () => {
  const work = join(mkdtempSync(join(tmpdir(), "gpu-dry-")), "work");
  const gpu = device("--dry-run", "--work", work, "--jobs", "16");
  assert.equal(gpu.status, 0, gpu.stderr);
  assert.match(gpu.stdout, /mode=cuda .*jobs=16/);
  assert.match(gpu.stdout, /GGML_CUDA=1 CMAKE_CUDA_ARCHITECTURES=90\b/);
  assert.deepEqual(gpu.stdout.match(/^step: (\w+)$/gm), ["step: unpack", "step: build", "step: models", "step: bench", "step: report"]);
  const cpu = device("--cpu", "--dry-run", "--work", work, "--steps", "bench,report", "--levels", "1,4");
  assert.equal(cpu.status, 0, cpu.stderr);
  assert.match(cpu.stdout, /mode=cpu gpu=false .*levels=1,4/);
  assert.doesNotMatch(cpu.stdout, /CMAKE_CUDA_ARCHITECTURES/);
  assert.deepEqual(cpu.stdout.match(/^step: (\w+)$/gm), ["step: bench", "step: report"]);
  assert.equal(existsSync(work), false);
});

test("the packed modules are node-llama-cpp's runtime closure with cmake-js, without prebuilt binaries", () => {
  const dirs = dependencyClosure(["node-llama-cpp", "cmake-js", "node-addon-api", "gpt-3-encoder"], join(import.meta.dirname, "../.."));
  const names = dirs.map((d) => d.slice(d.lastIndexOf("node_modules/") + "node_modules/".length));
  for (const needed of ["node-llama-cpp", "cmake-js", "node-api-headers", "node-addon-api", "gpt-3-encoder", "chalk", "lifecycle-utils"]) {
    assert.ok(names.includes(needed), `${needed} missing from the closure`);
  }
  assert.equal(names.filter((n) => n.startsWith("@node-llama-cpp/")).length, 0, "prebuilt binaries must not travel");
});

test("node-llama-cpp's build still removes its folder in one place, which the pack makes resumable", () => {
  const file = join(import.meta.dirname, "../../node_modules/node-llama-cpp/dist/bindings/utils/compileLLamaCpp.js");
  assert.equal(readFileSync(file, "utf8").split(RESUME_FROM).length, 2);
});

test("the ~1B model is 1.0–1.1 B parameters, matrices F16, norms F32, file type mostly-F16", async () => {
  const { metadata, tensors } = f16Contents(await llama1bSpec());
  const n = parameterCount(tensors);
  assert.ok(n > 1.0e9 && n < 1.1e9, `parameters ${n}`);
  assert.equal(tensors.length, 2 + 22 * 9);
  for (const t of tensors) assert.equal(t.type, t.dims.length >= 2 ? "F16" : "F32", t.name);
  assert.deepEqual(metadata.find(([k]) => k === "general.file_type")?.[1], { type: "u32", value: 1 });
  assert.deepEqual(metadata.find(([k]) => k === "llama.attention.head_count_kv")?.[1], { type: "u32", value: 4 });
});

test("F16 weights are deterministic per seed, within [-scale, scale], and differ between seeds", () => {
  const bytes = (seed: number) => Buffer.concat([...randomF16(5000, seed, 0.02)()]);
  const a = bytes(11);
  assert.equal(a.length, 10_000);
  assert.ok(a.equals(bytes(11)));
  assert.ok(!a.equals(bytes(12)));
  const halves = new Uint16Array(a.buffer, a.byteOffset, 5000);
  const toNumber = (h: number) => {
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
    return h & 0x8000 ? -v : v;
  };
  const values = Array.from(halves, toNumber);
  assert.ok(Math.max(...values.map(Math.abs)) <= 0.02 * 1.001);
  assert.ok(values.some((v) => v < -0.015) && values.some((v) => v > 0.015), "spread over the range");
});

const row = (pl: number, t_pp: number, t_tg: number): BatchedRow => ({ pp: 16, tg: 128, pl, t_pp, t_tg, t: t_pp + t_tg, speed_pp: 0, speed_tg: (pl * 128) / t_tg, speed: 0, n_gpu_layers: 99 });
const level = (concurrency: number, tokensPerSecond: number) => ({ concurrency, requests: concurrency, tokens: 128 * concurrency, seconds: (128 * concurrency) / tokensPerSecond, tokensPerSecond, ttftMedianMs: 20, ttftMaxMs: 30 });

test("the report compares the service with llama.cpp's generated tokens over prefill plus generation", () => {
  assert.equal(anchorTokensPerSecond(row(16, 0.048, 2)), (16 * 128) / 2.048);
  const service: ServiceResult = { name: "llama-1b-f16", device: "cuda", readySeconds: 3.2, engineLoadSeconds: 2.9, maxTokens: 128, levels: [level(1, 200), level(16, 950), level(64, 1700)] };
  const { markdown } = summarize({
    mode: "cuda",
    times: "build_node_llama_cpp\t300\nbatched_llama-1b-f16\t20\n",
    gpu: "NVIDIA H200",
    gpuMem: "",
    phases: "",
    batched: { "llama-1b-f16": [row(1, 0.01, 0.6), row(16, 0.05, 2), row(64, 0.1, 4)] },
    services: { "llama-1b-f16": service },
  });
  assert.match(markdown, /\| llama-1b-f16 \| 16 \| 999 \| 1024 \| 950 \| 95% \|/);
  assert.match(markdown, /at 16: service 95% of llama.cpp \(target ≥ 90%: met\)/);
  assert.match(markdown, /at 64: service 85% of llama.cpp \(target ≥ 90%: MISSED\)/);
  assert.match(markdown, /service at 64 = 8\.5× at 1 \(target ≥ 10×: MISSED\)/);
  assert.match(markdown, /load llama.cpp ≈ 13\.2 s/);
});

test("GPU memory: idle baseline and each phase's peak from nvidia-smi samples", () => {
  const gpuMem = ["2026/12/01 10:00:00.000, 500, 0", "2026/12/01 10:00:01.000, 4000, 90", "2026/12/01 10:00:02.000, 6000, 95", "2026/12/01 10:00:03.000, 7000, 99"].join("\n");
  const phases = ["2026/12/01 10:00:00.000\tidle", "2026/12/01 10:00:00.500\tbatched-bench m", "2026/12/01 10:00:02.500\tservice m", "2026/12/01 10:00:03.500\tend"].join("\n");
  assert.deepEqual(gpuMemoryByPhase(gpuMem, phases), { idleMiB: 500, peakMiB: { "batched-bench m": 6000, "service m": 7000 } });
});

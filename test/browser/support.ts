/**
 * What the browser suites need besides the platform: Debian's Chromium (never a downloaded one),
 * the console built by Vite for this run, a server for it, and screenshots of failures.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { registerConsole } from "../../src/http/console.js";
import { createHttpApp } from "../../src/http/server.js";
import { silentLogger } from "../../src/observability/logger.js";
import { startPlatform, type Platform, type PlatformOptions } from "../support/platform.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * A skip reason when Chromium is missing, else undefined. Under CI=true a missing Chromium fails:
 * .ci/run installs it, so its absence there is a broken CI, not a reason to pass.
 */
export function requireChromium(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const reason = `Chromium not found at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  if (process.env.CI === "true") throw new Error(`${reason}; CI needs it for the browser tests`);
  console.log(`# skipping suite: ${reason}`);
  return reason;
}

/**
 * Builds the console into a folder of this run's own: `npm run build` elsewhere (another suite)
 * empties dist/console while it rebuilds, which must not pull files from under this one. Also
 * means the test always sees the sources as they are, never a stale build.
 */
export async function buildConsole(): Promise<string> {
  const outDir = mkdtempSync(join(tmpdir(), "ml-inference-console-"));
  const vite = join(ROOT, "node_modules", "vite", "bin", "vite.js");
  await promisify(execFile)(process.execPath, [vite, "build", "--config", "console/vite.config.ts", "--outDir", outDir, "--emptyOutDir", "--logLevel", "warn"], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  if (!existsSync(join(outDir, "index.html"))) throw new Error(`vite build left no index.html in ${outDir}`);
  return outDir;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "upgrade"]);

/**
 * The console on a fastify app of its own that also forwards /api, /v1 and /events to the platform
 * (streaming: SSE passes through as it comes). Until registerConsole is mounted in the real
 * assembly; then the test can serve from the platform's own app instead.
 */
export async function startConsoleServer(platformUrl: string, root: string, options: { redirectRoot?: boolean } = {}): Promise<{ url: string; app: FastifyInstance }> {
  // The HTTP shell the gateway's app is made with (error shapes, 404 and 405 answers), as there.
  const app = createHttpApp({ logger: silentLogger, registries: [], health: false });
  registerConsole(app, { redirectRoot: options.redirectRoot ?? true, root });
  // Bodies pass through untouched, whatever their type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  const forward = async (request: FastifyRequest, reply: FastifyReply) => {
    const controller = new AbortController();
    reply.raw.once("close", () => controller.abort());
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (!HOP_BY_HOP.has(name) && typeof value === "string") headers.set(name, value);
    }
    const upstream = await fetch(`${platformUrl}${request.url}`, {
      method: request.method,
      headers,
      body: request.method === "GET" || request.method === "HEAD" || !request.body ? undefined : new Uint8Array(request.body as Buffer),
      signal: controller.signal,
      redirect: "manual",
    });
    reply.code(upstream.status);
    upstream.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) reply.header(name, value);
    });
    return reply.send(upstream.body ? Readable.fromWeb(upstream.body as import("node:stream/web").ReadableStream) : "");
  };
  for (const prefix of ["/api/*", "/v1/*", "/events/*"]) app.all(prefix, forward);
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return { url, app };
}

/** Headless Debian Chromium with a fresh profile, nothing running in the background. */
export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "ml-inference-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
    viewport: { width: 1100, height: 760 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const RESULTS = process.env.TEST_RESULTS_DIR ?? join(tmpdir(), "ml-inference-test-results");

/** Runs `body` on a new tab (a new tab: a fresh sessionStorage); a failure leaves a screenshot. */
export async function withPage(context: BrowserContext, name: string, body: (page: Page) => Promise<void>): Promise<void> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  // A CSP violation (an inline style or script, a file from elsewhere) is a console error too. An
  // API's 4xx is one as well ("Failed to load resource"): those are the tests' own doing.
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) problems.push(`console error: ${message.text()}`);
  });
  try {
    await body(page);
    if (problems.length > 0) throw new Error(problems.join("\n"));
  } catch (error) {
    mkdirSync(RESULTS, { recursive: true });
    const path = join(RESULTS, `console-${name.replace(/[^\w-]+/g, "-")}-${Date.now()}.png`);
    await page.screenshot({ path, fullPage: true }).catch(() => undefined);
    console.log(`# screenshot of the failed test: ${path}`);
    throw error;
  } finally {
    await page.close().catch(() => undefined);
  }
}

/** Signs in through the form, with the keyboard only (the form submits on Enter). */
export async function signIn(page: Page, consoleUrl: string, authorization: string): Promise<void> {
  await page.goto(`${consoleUrl}/console/`);
  const key = page.getByLabel("API key");
  await key.focus();
  await page.keyboard.type(authorization.replace(/^Bearer /, ""));
  await page.keyboard.press("Enter");
  await page.getByRole("navigation", { name: "Console" }).waitFor();
}

/**
 * What every console suite starts: the console built, a platform, the console served beside it and
 * a browser; `stop` ends them all (and removes the build).
 */
export async function startConsoleHarness(options: PlatformOptions): Promise<{
  platform: Platform;
  consoleUrl: string;
  browser: Awaited<ReturnType<typeof launchBrowser>>;
  stop(): Promise<void>;
}> {
  const [built, platform] = await Promise.all([buildConsole(), startPlatform(options)]);
  const server = await startConsoleServer(platform.url, built);
  const browser = await launchBrowser();
  return {
    platform,
    consoleUrl: server.url,
    browser,
    async stop() {
      await browser.close();
      await server.app.close();
      await platform.stop();
      rmSync(built, { recursive: true, force: true });
    },
  };
}

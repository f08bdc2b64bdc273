/**
 * The HTTP shell over a real socket: every answer a client can get (fastify's and Node's own
 * included) is our error shape with a code from the table, OpenAI's shape under /v1, a 413 reaches
 * Node's fetch every time, CORS answers preflights for configured origins only, and /health shows
 * no internals and answers in time.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { connect } from "node:net";
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../config.js";
import { AppError, ERRORS, isErrorCode } from "../errors.js";
import { silentLogger } from "../observability/logger.js";
import { createRegistry } from "../observability/metrics.js";
import { createHttpApp, HEALTH_TIMEOUT_MS, NotReady, probeDependencies, type HttpAppOptions } from "./server.js";

const ALLOWED = "https://app.example.com";
const BODY_LIMIT = 64 * 1024;

/** /slow waits for `gate`, after calling `entered`. */
const slow = { gate: Promise.resolve(), entered: () => undefined as void };

async function start(options: Partial<HttpAppOptions> = {}): Promise<{ app: FastifyInstance; url: string }> {
  const app = createHttpApp({ logger: silentLogger, registries: [createRegistry()], bodyLimitBytes: BODY_LIMIT, ...options });
  app.post("/echo", async (request) => ({ got: request.body }));
  app.get("/items/:id", async (request) => ({ id: (request.params as { id: string }).id }));
  app.post("/v1/completions", async (request) => ({ got: request.body }));
  app.get("/slow", async () => {
    slow.entered();
    await slow.gate;
    return { done: true };
  });
  app.get("/boom", async () => {
    throw new Error("connect ECONNREFUSED 127.0.0.1:19088");
  });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return { app, url };
}

/** Our shape, a code of the table with the table's status, and nothing internal in it. */
function assertOurError(status: number, body: unknown, code: string): void {
  const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
  assert.ok(error, `an error object in ${JSON.stringify(body)}`);
  assert.equal(error.code, code);
  assert.ok(isErrorCode(error.code));
  assert.equal(ERRORS[error.code].status, status);
  assert.equal(typeof error.message, "string");
  assert.doesNotMatch(JSON.stringify(body), /FST_ERR|ECONNREFUSED|127\.0\.0\.1|\bat \w|statusCode/);
}

/** Sends raw bytes and returns the status line's code and the body. */
function rawRequest(url: string, bytes: string): Promise<{ status: number; body: unknown }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1", () => socket.write(bytes));
    let text = "";
    socket.on("data", (chunk) => (text += chunk.toString()));
    socket.on("error", reject);
    socket.on("close", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      const body = text.slice(text.indexOf("\r\n\r\n") + 4);
      try {
        resolve({ status, body: JSON.parse(body) });
      } catch {
        reject(new Error(`not JSON: ${text.slice(0, 300)}`));
      }
    });
  });
}

const FETCH_CLIENT = `
const [url, size, tries] = process.argv.slice(1);
const body = Buffer.alloc(Number(size), 120);
const answers = [];
for (let i = 0; i < Number(tries); i++) {
  try {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    answers.push({ status: response.status, body: await response.json() });
  } catch (error) {
    answers.push({ status: 0, error: String(error.cause?.code ?? error) });
  }
}
process.stdout.write(JSON.stringify(answers));
`;

/** POSTs `size` bytes `tries` times, one after another, with Node's fetch from a child process. */
async function fetchFromAnotherProcess(url: string, size: number, tries: number): Promise<Array<{ status: number; body?: unknown; error?: string }>> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", FETCH_CLIENT, url, String(size), String(tries)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  assert.equal(code, 0, "the fetch client exits cleanly");
  return JSON.parse(out) as Array<{ status: number; body?: unknown; error?: string }>;
}

describe("the HTTP shell's error answers", () => {
  let server: { app: FastifyInstance; url: string };
  before(async () => (server = await start()));
  after(() => server.app.close());

  it("a 5 MB body reaches Node's fetch as a 413, 20 times in 20", async () => {
    // The client runs in its own process, as real clients do: in this process the server could not
    // answer while the client writes, and the EPIPE race (answer, close, client still writing) never shows.
    const answers = await fetchFromAnotherProcess(`${server.url}/echo`, 5 * 1024 * 1024, 20);
    assert.deepEqual(answers.map((a) => a.status), Array(20).fill(413), JSON.stringify(answers));
    for (const answer of answers) assertOurError(413, answer.body, "payload_too_large");
  });

  it("fastify's own client errors are in our shape", async () => {
    const cases: Array<[string, RequestInit & { path: string }, number, string]> = [
      ["malformed JSON", { path: "/echo", method: "POST", headers: { "content-type": "application/json" }, body: "{oops" }, 400, "invalid_json"],
      ["empty JSON", { path: "/echo", method: "POST", headers: { "content-type": "application/json" }, body: "" }, 400, "invalid_json"],
      ["unknown media type", { path: "/echo", method: "POST", headers: { "content-type": "application/xml" }, body: "<a/>" }, 415, "unsupported_media_type"],
      ["unknown route", { path: "/nowhere" }, 404, "not_found"],
      ["known route, wrong method", { path: "/echo", method: "GET" }, 405, "method_not_allowed"],
      ["parametric route, wrong method", { path: "/items/42", method: "DELETE" }, 405, "method_not_allowed"],
      ["bad percent-encoding", { path: "/items/%E0%A4%A" }, 400, "malformed_request"],
      ["too long a path parameter", { path: `/items/${"a".repeat(200)}` }, 414, "uri_too_long"],
      ["an unexpected error", { path: "/boom" }, 500, "internal_error"],
    ];
    for (const [what, { path, ...init }, status, code] of cases) {
      const response = await fetch(`${server.url}${path}`, init);
      assert.equal(response.status, status, what);
      assert.match(String(response.headers.get("content-type")), /^application\/json/, what);
      assertOurError(status, await response.json(), code);
    }
    const wrongMethod = await fetch(`${server.url}/echo`);
    assert.equal(wrongMethod.headers.get("allow"), "POST");
  });

  it("Node's parser errors (431, not HTTP) are in our shape", async () => {
    const huge = await rawRequest(server.url, `GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assert.equal(huge.status, 431);
    assertOurError(431, huge.body, "headers_too_large");
    const garbage = await rawRequest(server.url, "THIS IS NOT HTTP\r\n\r\n");
    assert.equal(garbage.status, 400);
    assertOurError(400, garbage.body, "malformed_request");
  });

  it("requests arriving while the server closes get our 503, not fastify's", async () => {
    const { app, url } = await start();
    let release: () => void = () => undefined;
    slow.gate = new Promise<void>((resolve) => (release = resolve));
    const entered = new Promise<void>((resolve) => (slow.entered = resolve));
    const { port } = new URL(url);
    const socket = connect(Number(port), "127.0.0.1");
    let text = "";
    socket.on("data", (chunk) => (text += chunk.toString()));
    const closed = once(socket, "close");
    // A connection busy with /slow when the close begins (so it is not closed as idle), then a
    // second request on it once the server has stopped listening.
    socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await entered;
    const closing = app.close();
    while (app.server.listening) await new Promise((resolve) => setImmediate(resolve));
    socket.write("GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    release();
    await closed;
    await closing;
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, text);
    assert.match(answers[0] as string, /^HTTP\/1\.1 200/);
    assert.match(answers[1] as string, /^HTTP\/1\.1 503/);
    const body = JSON.parse((answers[1] as string).slice((answers[1] as string).indexOf("\r\n\r\n") + 4));
    assertOurError(503, body, "service_unavailable");
  });

  it("on /v1 routes errors take OpenAI's shape with the same stable code", async () => {
    const bad = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: { message: "the body is not valid JSON", type: "invalid_request_error", param: null, code: "invalid_json" } });
    const unknown = await fetch(`${server.url}/v1/nothing`);
    assert.equal(unknown.status, 404);
    const body = (await unknown.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(body.error.code, "not_found");
  });
});

describe("the HTTP shell's options", () => {
  it("jsonOnly refuses JSON sent as text with 415", async () => {
    const { app, url } = await start({ jsonOnly: true });
    try {
      const response = await fetch(`${url}/echo`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
      assertOurError(415, await response.json(), "unsupported_media_type");
      const json = await fetch(`${url}/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"a":1}' });
      assert.deepEqual(await json.json(), { got: { a: 1 } });
    } finally {
      await app.close();
    }
  });

  it("onErrorAnswer sees every error answer's code", async () => {
    const seen: string[] = [];
    const { app, url } = await start({ onErrorAnswer: (error) => seen.push(error.code) });
    try {
      await fetch(`${url}/nowhere`);
      await fetch(`${url}/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
      assert.deepEqual(seen, ["not_found", "invalid_json"]);
    } finally {
      await app.close();
    }
  });
});

describe("CORS: one setting for every component", () => {
  let server: { app: FastifyInstance; url: string };
  before(async () => {
    const config = loadConfig({ CORS_ORIGINS: ` ${ALLOWED} , https://other.example.com` }, "all");
    assert.deepEqual(config.common.corsOrigins, [ALLOWED, "https://other.example.com"]);
    server = await start({ corsOrigins: config.common.corsOrigins });
  });
  after(() => server.app.close());

  const preflight = (origin: string) =>
    fetch(`${server.url}/echo`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });

  it("a preflight from an allowed origin is answered with what it may send", async () => {
    const response = await preflight(ALLOWED);
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("access-control-allow-origin"), ALLOWED);
    assert.match(String(response.headers.get("access-control-allow-methods")), /\bPOST\b/);
    assert.match(String(response.headers.get("access-control-allow-headers")), /Authorization/i);
    assert.match(String(response.headers.get("vary")), /Origin/);
    const simple = await fetch(`${server.url}/items/1`, { headers: { origin: ALLOWED } });
    assert.equal(simple.headers.get("access-control-allow-origin"), ALLOWED);
  });

  it("a preflight from any other origin gets no CORS headers", async () => {
    const response = await preflight("https://evil.example.com");
    assert.equal(response.headers.get("access-control-allow-origin"), null);
    assert.equal(response.headers.get("access-control-allow-methods"), null);
    assert.notEqual(response.status, 204);
    const simple = await fetch(`${server.url}/items/1`, { headers: { origin: "https://evil.example.com" } });
    assert.equal(simple.headers.get("access-control-allow-origin"), null);
  });
});

describe("/health", () => {
  it("shows which dependency is down, never its error's text", async () => {
    const { app, url } = await start({
      health: async () => {
        await probeDependencies({
          redis: async () => undefined,
          postgres: async () => {
            throw new Error("connect ECONNREFUSED 127.0.0.1:19088");
          },
        });
        return { component: "test" };
      },
    });
    try {
      const response = await fetch(`${url}/health`);
      assert.equal(response.status, 503);
      const text = await response.text();
      assert.deepEqual(JSON.parse(text), { status: "unavailable", down: ["postgres"] });
      assert.doesNotMatch(text, /ECONNREFUSED|127\.0\.0\.1|19088/);
    } finally {
      await app.close();
    }
  });

  it("an error that is not NotReady shows nothing but unavailable", async () => {
    const { app, url } = await start({
      health: async () => {
        throw new AppError("service_unavailable", "redis at 10.0.0.7:6379 refused");
      },
    });
    try {
      const response = await fetch(`${url}/health`);
      assert.equal(response.status, 503);
      assert.deepEqual(await response.json(), { status: "unavailable" });
    } finally {
      await app.close();
    }
  });

  it("answers within a second when a check hangs", async () => {
    const { app, url } = await start({ health: () => new Promise(() => undefined) });
    try {
      const started = performance.now();
      const response = await fetch(`${url}/health`);
      const elapsed = performance.now() - started;
      assert.equal(response.status, 503);
      assert.ok(elapsed < 1000 && elapsed >= HEALTH_TIMEOUT_MS - 50, `answered after ${Math.round(elapsed)} ms`);
    } finally {
      await app.close();
    }
  });

  it("a NotReady body and Retry-After are the service's own choice", async () => {
    const { app, url } = await start({
      health: async () => {
        throw new NotReady({ status: "loading", loaded: false }, 2);
      },
    });
    try {
      const response = await fetch(`${url}/health`);
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("retry-after"), "2");
      assert.deepEqual(await response.json(), { status: "loading", loaded: false });
    } finally {
      await app.close();
    }
  });
});

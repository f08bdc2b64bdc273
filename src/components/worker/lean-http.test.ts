/**
 * The worker's lean keep-alive client against a real node:http server on loopback: connections
 * reused, closed when the server says so, when idle too long and when a call is aborted; a server
 * that hangs up mid-answer or is not there rejects the call; headers cannot be smuggled in.
 */
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { LeanHttpPool } from "./lean-http.js";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

describe("LeanHttpPool against a node:http server", () => {
  let handler: Handler;
  const sockets = new Set<Socket>();
  let opened = 0;
  let closedResolvers: Array<() => void> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, Buffer.concat(chunks).toString("utf8"), res));
  });
  server.keepAliveTimeout = 60_000;
  server.on("connection", (socket: Socket) => {
    opened++;
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      for (const r of closedResolvers.splice(0)) r();
    });
  });
  const nextServerClose = () => new Promise<void>((r) => closedResolvers.push(r));
  let url: URL;
  const signal = () => new AbortController().signal;
  /** Runs `test` with a fresh pool, destroyed after it whatever happens. */
  const withPool = async (test: (pool: LeanHttpPool) => Promise<void>, idleMs?: number) => {
    const pool = new LeanHttpPool(idleMs);
    try {
      await test(pool);
    } finally {
      pool.destroy();
    }
  };

  before(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/inference?x=1`);
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    opened = 0;
    handler = (req, body, res) => res.end(JSON.stringify({ url: req.url, method: req.method, type: req.headers["content-type"], auth: req.headers.authorization, body }));
  });

  it("posts the JSON with its headers, and reuses the connection for the next call", async () => {
    await withPool(async (pool) => {
      const first = await pool.post(url, '{"prompt":"ünï"}', { authorization: "Bearer t" }, signal());
      assert.equal(first.status, 200);
      assert.deepEqual(JSON.parse(first.text), { url: "/inference?x=1", method: "POST", type: "application/json", auth: "Bearer t", body: '{"prompt":"ünï"}' });
      await pool.post(url, "{}", {}, signal());
      await pool.post(url, "{}", {}, signal());
      assert.equal(opened, 1);
    });
  });

  it("opens one connection per concurrent call and keeps them all", async () => {
    await withPool(async (pool) => {
      await Promise.all([1, 2, 3].map(() => pool.post(url, "{}", {}, signal())));
      await Promise.all([1, 2, 3].map(() => pool.post(url, "{}", {}, signal())));
      assert.equal(opened, 3);
    });
  });

  it("answers a non-2xx status with its Retry-After, and reads a chunked body", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(503, { "retry-after": "7" });
      res.write('{"error":');
      res.end('{"code":"overloaded"}}');
    };
    await withPool(async (pool) => {
      const answer = await pool.post(url, "{}", {}, signal());
      assert.deepEqual(answer, { status: 503, retryAfter: "7", text: '{"error":{"code":"overloaded"}}' });
    });
  });

  it("does not reuse a connection the server closes", async () => {
    handler = (_req, _body, res) => {
      res.setHeader("connection", "close");
      res.end("{}");
    };
    await withPool(async (pool) => {
      await pool.post(url, "{}", {}, signal());
      await pool.post(url, "{}", {}, signal());
      assert.equal(opened, 2);
    });
  });

  it("closes a connection left idle for idleMs", async () => {
    await withPool(async (pool) => {
      const closed = nextServerClose();
      await pool.post(url, "{}", {}, signal());
      await closed; // closed by the client's idle timer: the server keeps connections for 60 s
      await pool.post(url, "{}", {}, signal());
      assert.equal(opened, 2);
    }, 30);
  });

  it("an abort rejects at once with an AbortError, closes that connection, and the next call works", async () => {
    let answerLater: (() => void) | undefined;
    handler = (_req, _body, res) => (answerLater = () => res.end("{}"));
    await withPool(async (pool) => {
      const controller = new AbortController();
      const call = pool.post(url, "{}", {}, controller.signal);
      while (!answerLater) await new Promise((r) => setImmediate(r));
      const closed = nextServerClose();
      controller.abort();
      await assert.rejects(call, { name: "AbortError" });
      await closed;
      handler = (_req, _body, res) => res.end('{"ok":true}');
      assert.equal((await pool.post(url, "{}", {}, signal())).text, '{"ok":true}');
    });
  });

  it("an aborted signal sends nothing", async () => {
    const pool = new LeanHttpPool();
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(pool.post(url, "{}", {}, controller.signal), { name: "AbortError" });
    assert.equal(opened, 0);
    pool.destroy();
  });

  it("a server that hangs up in the middle of the answer rejects the call", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial", () => res.socket?.destroy());
    };
    await withPool(async (pool) => {
      await assert.rejects(pool.post(url, "{}", {}, signal()), /closed before the answer ended/);
    });
  });

  it("a server that is not there rejects with the connection error", async () => {
    const idle = createServer();
    await new Promise<void>((r) => idle.listen(0, "127.0.0.1", r));
    const port = (idle.address() as AddressInfo).port;
    await new Promise<void>((r) => idle.close(() => r()));
    const pool = new LeanHttpPool();
    await assert.rejects(pool.post(new URL(`http://127.0.0.1:${port}/`), "{}", {}, signal()), { code: "ECONNREFUSED" });
    pool.destroy();
  });

  it("refuses a header value that would end its line", async () => {
    const pool = new LeanHttpPool();
    await assert.rejects(pool.post(url, "{}", { "x-request-id": "a\r\nx-admin: yes" }, signal()), /invalid header/);
    assert.equal(opened, 0);
    pool.destroy();
  });

  it("destroy() closes the connections, and rejects a call in progress", async () => {
    handler = () => undefined; // never answers
    const pool = new LeanHttpPool();
    const call = pool.post(url, "{}", {}, signal());
    while (sockets.size === 0) await new Promise((r) => setImmediate(r));
    pool.destroy();
    await assert.rejects(call, /closed before the answer ended/);
  });
});

/**
 * The streamed model call against a scripted model server: NDJSON split anywhere (mid-line, mid
 * UTF-8 character), error lines and answers, cuts, timeouts and cancels of a streaming client's
 * call, and the non-streamed fallback for OpenAI-compatible servers. The real ML Service is in test/ml-service/ml-stream.test.ts.
 */
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { modelRequest, scriptedModelServer, type ModelScript, type ScriptedModelServer } from "../../../test/support/model-server.js";
import { createKeepAliveAgent } from "./http-post.js";
import { MlCallError, type MlClientOptions } from "./ml-client.js";
import { generateStream } from "./ml-stream.js";

// The streamed call is a streaming client's; one that is not gets the whole answer (ml-whole.test.ts).
const MESSAGE = modelRequest("00000000-0000-4000-8000-000000000002", { stream: true });

const line = (o: unknown) => `${JSON.stringify(o)}\n`;
const counts = (p: number, c: number) => ({ prompt_tokens: p, completion_tokens: c });
const first = (p: number) => line({ token: "", is_finished: false, ...counts(p, 0) });
const tok = (token: string, p: number, c: number) => line({ token, is_finished: false, ...counts(p, c) });
const last = (p: number, c: number, finish = "length") =>
  line({ token: "", is_finished: true, ...counts(p, c), token_usage: { ...counts(p, c), total_tokens: p + c }, model: "m", processing_time: 0.1, finish_reason: finish });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


describe("generateStream against a scripted model server", () => {
  let model: ScriptedModelServer;
  let baseUrl: string;
  let script: ModelScript;
  let received: Array<{ url: string; headers: IncomingMessage["headers"]; body: Record<string, unknown> }>;
  let connections = 0;
  let closedRequests = 0;

  before(async () => {
    model = await scriptedModelServer((req, res, body) => {
      received.push({ url: req.url ?? "", headers: req.headers, body });
      res.once("close", () => {
        if (!res.writableFinished) closedRequests++;
      });
      return script(req, res, body);
    });
    model.server.on("connection", (socket) => {
      connections++;
      socket.setNoDelay(true);
    });
    baseUrl = model.baseUrl;
  });
  after(() => model.close());
  beforeEach(() => {
    received = [];
    connections = 0;
    closedRequests = 0;
  });

  const options = (over: Partial<MlClientOptions> = {}): MlClientOptions => ({ baseUrl, api: "native", timeoutMs: 2_000, ...over });
  const ndjsonHead = (res: ServerResponse) => {
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    res.flushHeaders();
  };
  /** Writes the bytes in pieces, each on its own after a pause, so the client reads them apart. */
  const writeSplit = async (res: ServerResponse, bytes: Buffer, cuts: number[]) => {
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      res.write(bytes.subarray(at, cut));
      at = cut;
      await sleep(15);
    }
  };
  const rejection = async (promise: Promise<unknown>): Promise<MlCallError> => {
    try {
      await promise;
    } catch (error) {
      assert.ok(error instanceof MlCallError, String(error));
      return error;
    }
    throw new Error("the call succeeded");
  };

  it("sends stream: true, the bearer token and the request id; messages instead of the prompt", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.end(first(3) + tok("a", 3, 1) + last(3, 1, "stop"));
    };
    const messages = [{ role: "user" as const, content: "hello" }];
    const result = await generateStream(options({ token: "secret" }), { ...MESSAGE, messages }, {});
    assert.equal(result.finishReason, "stop");
    const sent = received[0];
    assert.ok(sent);
    assert.equal(sent.url, "/inference");
    assert.equal(sent.headers.authorization, "Bearer secret");
    assert.equal(sent.headers["x-request-id"], MESSAGE.request_id);
    assert.equal(sent.body.stream, true);
    assert.deepEqual(sent.body.messages, messages);
    assert.ok(!("prompt" in sent.body), "messages go instead of the prompt");
    assert.equal(sent.body.max_length, 4);
    await generateStream(options(), MESSAGE, {});
    assert.equal(received[1]?.body.prompt, "hi");
    assert.ok(!("messages" in (received[1]?.body ?? {})));
  });

  it("reads lines and UTF-8 characters split across chunks; deltas in order, the result from the last line", async () => {
    // "é" is 2 bytes, "🙂" 4, "日" 3: the cuts fall inside each of them and inside lines.
    const tokens = ["Hé", "llo 🙂", " 日本", "!"];
    const text =
      first(5) + tokens.map((t, i) => tok(t, 5, i + 1)).join("") + tok("", 5, 5) + last(5, 5);
    const bytes = Buffer.from(text, "utf8");
    const inside = (s: string, char: string, k: number) => Buffer.byteLength(s.slice(0, s.indexOf(char)), "utf8") + k;
    const cuts = [3, inside(text, "é", 1), inside(text, "🙂", 1), inside(text, "🙂", 3), inside(text, "日", 2), bytes.length - 7].sort((a, b) => a - b);
    script = async (_req, res) => {
      ndjsonHead(res);
      await writeSplit(res, bytes, cuts);
      res.end();
    };
    const deltas: string[] = [];
    const result = await generateStream(options(), MESSAGE, { onDelta: (d) => deltas.push(d) });
    assert.deepEqual(deltas, tokens, "every non-empty token, whole, in order");
    assert.equal(result.outputText, tokens.join(""));
    assert.deepEqual(result.usage, { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 });
    assert.equal(result.finishReason, "length");
    assert.equal(result.model, "m");
    assert.equal(result.outputs, undefined);
  });

  it("the text of the last line is part of the result and its last delta", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.end(tok("Once", 3, 1) + line({ token: " upon", is_finished: true, ...counts(3, 2), token_usage: { ...counts(3, 2), total_tokens: 5 }, model: "m", finish_reason: "stop" }));
    };
    const deltas: string[] = [];
    const result = await generateStream(options(), MESSAGE, { onDelta: (d) => deltas.push(d) });
    assert.equal(result.outputText, "Once upon");
    assert.deepEqual(deltas, ["Once", " upon"]);
  });

  it("a last line without a trailing newline still ends the answer", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.end(first(2) + tok("x", 2, 1) + last(2, 1, "stop").trimEnd());
    };
    const result = await generateStream(options(), MESSAGE, {});
    assert.equal(result.outputText, "x");
    assert.equal(result.finishReason, "stop");
  });

  it("an error line mid-stream is an MlCallError with its code: transient only when the code is retryable", async () => {
    const cases: Array<[string, string, boolean]> = [
      ["generation_failed", "generation_failed", true],
      ["service_unavailable", "service_unavailable", true],
      ["prompt_too_long", "prompt_too_long", false],
      ["something_else", "ml_http_error", false],
    ];
    for (const [sent, code, transient] of cases) {
      script = (_req, res) => {
        ndjsonHead(res);
        res.end(first(4) + tok("ab", 4, 1) + line({ error: { code: sent, message: "boom" }, is_finished: true }));
      };
      const deltas: string[] = [];
      const error = await rejection(generateStream(options(), MESSAGE, { onDelta: (d) => deltas.push(d) }));
      assert.equal(error.code, code, sent);
      assert.equal(error.transient, transient, sent);
      assert.match(error.message, /boom/);
      assert.deepEqual(deltas, ["ab"], "the deltas before the error were forwarded");
    }
  });

  it("an error answer before streaming is classified as generate() does", async () => {
    script = (_req, res) => {
      res.writeHead(503, { "content-type": "application/json", "retry-after": "2" });
      res.end(JSON.stringify({ error: { code: "queue_full", message: "busy" } }));
    };
    const busy = await rejection(generateStream(options(), MESSAGE, {}));
    assert.equal(busy.code, "queue_full");
    assert.equal(busy.transient, true);
    assert.equal(busy.retryAfterMs, 2_000);
    script = (_req, res) => {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "invalid_parameter", message: "messages: bad" } }));
    };
    const bad = await rejection(generateStream(options(), MESSAGE, {}));
    assert.equal(bad.code, "invalid_parameter");
    assert.equal(bad.transient, false);
    script = (_req, res) => {
      res.writeHead(502).end("<html>bad gateway</html>");
    };
    const foreign = await rejection(generateStream(options(), MESSAGE, {}));
    assert.equal(foreign.code, "ml_http_error");
    assert.match(foreign.message, /\b502\b/);
    assert.equal(foreign.transient, true);
  });

  it("a connection cut mid-stream is ml_unreachable, transient", async () => {
    script = async (_req, res) => {
      ndjsonHead(res);
      res.write(first(3) + tok("a", 3, 1));
      await sleep(20);
      res.destroy();
    };
    const deltas: string[] = [];
    const error = await rejection(generateStream(options(), MESSAGE, { onDelta: (d) => deltas.push(d) }));
    assert.equal(error.code, "ml_unreachable");
    assert.equal(error.transient, true);
    assert.deepEqual(deltas, ["a"]);
  });

  it("a stream that ends without its last line, or with a line that is not JSON, is ml_bad_response", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.end(first(3) + tok("a", 3, 1));
    };
    assert.equal((await rejection(generateStream(options(), MESSAGE, {}))).code, "ml_bad_response");
    script = (_req, res) => {
      ndjsonHead(res);
      res.end(first(3) + "{not json\n" + last(3, 0));
    };
    const error = await rejection(generateStream(options(), MESSAGE, {}));
    assert.equal(error.code, "ml_bad_response");
    assert.equal(error.transient, true);
  });

  it("the model server down is ml_unreachable, transient, its address only in the cause", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await rejection(generateStream(options({ baseUrl: `http://127.0.0.1:${port}` }), MESSAGE, {}));
    assert.equal(error.code, "ml_unreachable");
    assert.equal(error.transient, true);
    assert.doesNotMatch(error.message, new RegExp(`127\\.0\\.0\\.1|${port}|ECONNREFUSED`));
    assert.ok(error.cause);
  });

  it("a cancel resolves 'cancelled' with the deltas so far and the last line's counts, and ends the request", async () => {
    script = async (_req, res) => {
      ndjsonHead(res);
      // The first lines in one chunk: the cancel comes in the middle of it, the rest is not read.
      res.write(first(7) + [1, 2, 3, 4, 5].map((c) => tok(`t${c} `, 7, c * 2)).join(""));
      for (let c = 6; c <= 50 && !res.destroyed; c++) {
        res.write(tok(`t${c} `, 7, c * 2)); // two tokens a piece: the counts are the server's, not the deltas'
        await sleep(5);
      }
      res.end(last(7, 100));
    };
    const controller = new AbortController();
    const deltas: string[] = [];
    const result = await generateStream(
      options(),
      MESSAGE,
      {
        onDelta: (d) => {
          deltas.push(d);
          if (deltas.length === 3) controller.abort();
        },
      },
      controller.signal,
    );
    assert.equal(result.finishReason, "cancelled");
    assert.deepEqual(deltas, ["t1 ", "t2 ", "t3 "], "nothing after the cancel");
    assert.equal(result.outputText, "t1 t2 t3 ");
    assert.deepEqual(result.usage, { prompt_tokens: 7, completion_tokens: 6, total_tokens: 13 });
    for (let i = 0; i < 50 && closedRequests === 0; i++) await sleep(10);
    assert.equal(closedRequests, 1, "the server saw the request go away before its answer ended");
  });

  it("a cancel before anything arrived resolves 'cancelled' with zero usage; already aborted sends nothing", async () => {
    script = () => undefined; // never answers
    const controller = new AbortController();
    const pending = generateStream(options(), MESSAGE, {}, controller.signal);
    await sleep(30);
    controller.abort();
    const result = await pending;
    assert.equal(result.finishReason, "cancelled");
    assert.equal(result.outputText, "");
    assert.deepEqual(result.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    const calls = received.length;
    const again = await generateStream(options(), MESSAGE, {}, AbortSignal.abort());
    assert.equal(again.finishReason, "cancelled");
    assert.equal(received.length, calls, "no call for a signal already aborted");
  });

  it("the first line alone tells a cancel the prompt's count", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.write(first(9));
    };
    const controller = new AbortController();
    const pending = generateStream(options(), MESSAGE, {}, controller.signal);
    for (let i = 0; i < 100 && received.length === 0; i++) await sleep(5);
    await sleep(50);
    controller.abort();
    const result = await pending;
    assert.equal(result.finishReason, "cancelled");
    assert.deepEqual(result.usage, { prompt_tokens: 9, completion_tokens: 0, total_tokens: 9 });
  });

  it("a server that stops mid-stream past the timeout is ml_timeout, not a cancel", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.write(first(3) + tok("a", 3, 1));
    };
    const controller = new AbortController();
    const error = await rejection(generateStream(options({ timeoutMs: 150 }), MESSAGE, {}, controller.signal));
    assert.equal(error.code, "ml_timeout");
    assert.equal(error.transient, true);
    assert.match(error.message, /150 ms/);
  });

  it("streamed calls reuse the keep-alive connection", async () => {
    script = (_req, res) => {
      ndjsonHead(res);
      res.end(first(1) + tok("a", 1, 1) + last(1, 1));
    };
    const agent = createKeepAliveAgent();
    try {
      for (let i = 0; i < 3; i++) assert.equal((await generateStream(options({ agent }), MESSAGE, {})).outputText, "a");
      assert.equal(connections, 1);
    } finally {
      agent.destroy();
    }
  });

  it("api openai: no stream; messages go to /v1/chat/completions and the whole text is one delta", async () => {
    script = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          model: "m",
          choices: [{ index: 0, message: { role: "assistant", content: "Hello there" }, finish_reason: "length" }],
          usage: { prompt_tokens: 6, completion_tokens: 2, total_tokens: 8 },
        }),
      );
    };
    const messages = [{ role: "user" as const, content: "hi" }];
    const deltas: string[] = [];
    const result = await generateStream(options({ api: "openai" }), { ...MESSAGE, messages }, { onDelta: (d) => deltas.push(d) });
    assert.equal(received[0]?.url, "/v1/chat/completions");
    assert.deepEqual(received[0]?.body.messages, messages);
    assert.equal(received[0]?.body.max_tokens, 4);
    assert.ok(!("stream" in (received[0]?.body ?? {})));
    assert.deepEqual(deltas, ["Hello there"]);
    assert.equal(result.outputText, "Hello there");
    assert.equal(result.finishReason, "length");
    assert.deepEqual(result.usage, { prompt_tokens: 6, completion_tokens: 2, total_tokens: 8 });
    script = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ choices: [{ text: "plain", finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1 } }));
    };
    const plain = await generateStream(options({ api: "openai" }), MESSAGE, {});
    assert.equal(received[1]?.url, "/v1/completions");
    assert.equal(plain.outputText, "plain");
    assert.equal(plain.finishReason, "stop");
  });
});

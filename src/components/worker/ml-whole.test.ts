/**
 * The whole model call of a client that is not streaming, against a scripted model server: it asks
 * for `stream: false`; a cancel asks the server to stop by id and reads the answer's counts; a
 * server that does not answer the cancel is cut after a bound. The real ML Service: test/ml-service/ml-stream.test.ts.
 */
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RequestMessage } from "../../domain/contracts.js";
import { generateStream } from "./ml-stream.js";

const MESSAGE = {
  v: 1,
  request_id: "00000000-0000-4000-8000-000000000007",
  user_id: "u",
  model: "default",
  prompt: "hi",
  params: { max_length: 4, temperature: 0, top_p: 1, top_k: 0, repetition_penalty: 1, num_return_sequences: 1 },
  reserved_tokens: 10,
  attempt: 1,
  created_at: new Date(0).toISOString(),
} as unknown as RequestMessage;

const answer = (text: string, p: number, c: number, finish: string) =>
  JSON.stringify({ output_text: text, token_usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c }, model: "m", processing_time: 0.1, finish_reason: finish });

describe("the whole call of a client that is not streaming", () => {
  let server: Server;
  let baseUrl: string;
  let received: Array<{ url: string; body: Record<string, unknown>; auth: string | undefined }>;
  /** The pending /inference answer, finished by the test (or by a cancel). */
  let pending: ((body: string) => void) | undefined;
  let answerCancels = true;

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
        received.push({ url: req.url ?? "", body, auth: req.headers.authorization });
        if (req.url === "/inference") {
          pending = (text) => res.writeHead(200, { "content-type": "application/json" }).end(text);
          return;
        }
        if (!answerCancels) return; // never answers: the worker must cut the call itself
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ cancelled: true }));
        pending?.(answer("Once up", 3, 2, "abort"));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    received = [];
    pending = undefined;
    answerCancels = true;
  });

  const options = { baseUrl: "", api: "native" as const, timeoutMs: 10_000, token: "t".repeat(16) };
  const until = async (what: () => boolean) => {
    while (!what()) await new Promise((r) => setTimeout(r, 2));
  };

  it("asks for the whole answer (stream: false) and hands its text to onDelta once", async () => {
    const deltas: string[] = [];
    const call = generateStream({ ...options, baseUrl }, MESSAGE, { onDelta: (d) => deltas.push(d) });
    await until(() => pending !== undefined);
    pending!(answer("Once upon", 3, 2, "length"));
    const result = await call;
    assert.equal(received[0]?.body.stream, false);
    assert.ok(!("stream_interval_ms" in received[0]!.body));
    assert.deepEqual(deltas, ["Once upon"]);
    assert.deepEqual(result.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    assert.equal(result.finishReason, "length");
  });

  it("a cancel stops the generation by id and settles the tokens the answer reports", async () => {
    const cancel = new AbortController();
    const call = generateStream({ ...options, baseUrl }, MESSAGE, {}, cancel.signal);
    await until(() => pending !== undefined);
    cancel.abort();
    const result = await call;
    assert.equal(received[1]?.url, `/inference/${MESSAGE.request_id}/cancel`);
    assert.equal(received[1]?.auth, `Bearer ${"t".repeat(16)}`, "the cancel carries the internal token");
    assert.equal(result.finishReason, "cancelled");
    assert.equal(result.outputText, "Once up");
    assert.deepEqual(result.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
  });

  it("an answer that finished before the cancel took effect stands", async () => {
    const cancel = new AbortController();
    const call = generateStream({ ...options, baseUrl }, MESSAGE, {}, cancel.signal);
    await until(() => pending !== undefined);
    answerCancels = false;
    pending!(answer("Once upon a", 3, 3, "stop"));
    cancel.abort();
    const result = await call;
    assert.equal(result.finishReason, "stop");
    assert.equal(result.usage.total_tokens, 6);
  });

  it("a server that answers neither the cancel nor the call is cut after a bound, settling nothing", async () => {
    answerCancels = false;
    const cancel = new AbortController();
    const call = generateStream({ ...options, baseUrl }, MESSAGE, {}, cancel.signal);
    await until(() => pending !== undefined);
    cancel.abort();
    const result = await call;
    assert.equal(result.finishReason, "cancelled");
    assert.deepEqual(result.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  });

  it("cancelled before it started: no call at all", async () => {
    const cancel = new AbortController();
    cancel.abort();
    const result = await generateStream({ ...options, baseUrl }, MESSAGE, {}, cancel.signal);
    assert.equal(result.finishReason, "cancelled");
    assert.equal(received.length, 0);
  });
});

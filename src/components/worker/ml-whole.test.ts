/**
 * The whole model call of a client that is not streaming, against a scripted model server: it asks
 * for `stream: false`; a cancel asks the server to stop by id and reads the answer's counts; a
 * server that does not answer the cancel is cut after a bound. The real ML Service: test/ml-service/ml-stream.test.ts.
 */
import { after, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { modelRequest, scriptedModelServer, type ScriptedModelServer } from "../../../test/support/model-server.js";
import { generateStream } from "./ml-stream.js";

const MESSAGE = modelRequest("00000000-0000-4000-8000-000000000007");

const answer = (text: string, p: number, c: number, finish: string) =>
  JSON.stringify({ output_text: text, token_usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c }, model: "m", processing_time: 0.1, finish_reason: finish });

describe("the whole call of a client that is not streaming", () => {
  let model: ScriptedModelServer;
  let baseUrl: string;
  let received: Array<{ url: string; body: Record<string, unknown>; auth: string | undefined }>;
  /** The pending /inference answer, finished by the test (or by a cancel). */
  let pending: ((body: string) => void) | undefined;
  let answerCancels = true;

  before(async () => {
    model = await scriptedModelServer((req, res, body) => {
      received.push({ url: req.url ?? "", body, auth: req.headers.authorization });
      if (req.url === "/inference") {
        pending = (text) => res.writeHead(200, { "content-type": "application/json" }).end(text);
        return;
      }
      if (!answerCancels) return; // never answers: the worker must cut the call itself
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ cancelled: true }));
      pending?.(answer("Once up", 3, 2, "abort"));
    });
    baseUrl = model.baseUrl;
  });
  after(() => model.close());
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

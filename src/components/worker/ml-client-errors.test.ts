/**
 * The worker's model calls fail with codes of the one table: our ML Service's own codes pass
 * through, any other server's answer is `ml_http_error` with its status in the message, and an
 * unreachable server is `ml_unreachable` without its host or port in the message.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { modelRequest, scriptedModelServer, type ScriptedModelServer } from "../../../test/support/model-server.js";
import { isErrorCode } from "../../errors.js";
import { MlCallError, generate } from "./ml-client.js";

const MESSAGE = modelRequest("00000000-0000-4000-8000-000000000001");

/** What the fake model server answers next: status, body. */
let next: { status: number; body: string } = { status: 200, body: "{}" };

async function callError(baseUrl: string): Promise<MlCallError> {
  try {
    await generate({ baseUrl, api: "native", timeoutMs: 2_000 }, MESSAGE);
  } catch (error) {
    assert.ok(error instanceof MlCallError, String(error));
    assert.ok(isErrorCode(error.code), `${error.code} is in the table`);
    return error;
  }
  throw new Error("the call succeeded");
}

describe("model call failures use the table's codes", () => {
  let model: ScriptedModelServer;
  let baseUrl: string;
  before(async () => {
    model = await scriptedModelServer((_req, res) => {
      res.writeHead(next.status, { "content-type": "application/json" }).end(next.body);
    });
    baseUrl = model.baseUrl;
  });
  after(() => model.close());

  it("our ML Service's code passes through", async () => {
    next = { status: 400, body: JSON.stringify({ error: { code: "prompt_too_long", message: "too long" } }) };
    const error = await callError(baseUrl);
    assert.equal(error.code, "prompt_too_long");
    assert.equal(error.transient, false);
  });

  it("another server's code, or none, is ml_http_error with the status in the message", async () => {
    next = { status: 400, body: JSON.stringify({ error: { code: "context_length_exceeded", message: "too long" } }) };
    const foreign = await callError(baseUrl);
    assert.equal(foreign.code, "ml_http_error");
    assert.match(foreign.message, /\b400\b/);
    assert.equal(foreign.transient, false);
    next = { status: 502, body: "<html>bad gateway</html>" };
    const html = await callError(baseUrl);
    assert.equal(html.code, "ml_http_error");
    assert.match(html.message, /\b502\b/);
    assert.equal(html.transient, true);
  });

  it("an unreadable success is ml_bad_response", async () => {
    next = { status: 200, body: JSON.stringify({ nothing: true }) };
    assert.equal((await callError(baseUrl)).code, "ml_bad_response");
  });

  it("an unreachable server is ml_unreachable, its address only in the cause", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await callError(`http://127.0.0.1:${port}`);
    assert.equal(error.code, "ml_unreachable");
    assert.equal(error.transient, true);
    assert.doesNotMatch(error.message, new RegExp(`127\\.0\\.0\\.1|${port}|ECONNREFUSED`));
    assert.ok(error.cause, "the cause is kept for the logs");
  });
});

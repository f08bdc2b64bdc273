import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { createLogger } from "./logger.js";

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

describe("logs", () => {
  it("JSON away from a terminal (auto): one object a line, the component named once", () => {
    const out = capture();
    createLogger({ destination: out.stream }).child({ component: "gateway" }).info({ request_id: "r1" }, "request admitted");
    const line = out.text().trim();
    assert.equal(line.match(/"component"/g)?.length, 1);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.deepEqual([parsed.level, parsed.component, parsed.request_id, parsed.msg], ["info", "gateway", "r1", "request admitted"]);
  });

  it("pretty: a short line a person can read, the component once, no JSON braces around the message", () => {
    const out = capture();
    createLogger({ format: "pretty", destination: out.stream }).child({ component: "worker" }).warn({ request_id: "r2" }, "model call failed");
    const line = out.text().trim();
    assert.match(line, /^\[\d\d:\d\d:\d\d\] WARN: \[worker\] model call failed \{"request_id":"r2"\}$/);
    assert.equal(line.match(/worker/g)?.length, 1);
  });
});

/**
 * Admission and tracing, in process on embedded adapters: with tracing off the request message goes
 * out exactly as before (no header, the admission span is the API's no-op one); with it on, the
 * message carries a traceparent in the client's trace, whose parent is the exported admission span.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { startTracing, tracingEnabled } from "../../src/observability/tracing.js";
import { startPlatform, type Platform } from "../support/platform.js";

const CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";
const TRACEPARENT = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

describe("admission and traceparent", () => {
  let platform: Platform;
  before(async () => {
    // Nothing consumes: the request messages wait in the queue to be looked at. No model either.
    platform = await startPlatform({ backend: "embedded", anonymous: true, consumers: false, mlServiceUrl: "http://127.0.0.1:9" });
  });
  after(async () => {
    await platform?.stop();
  });

  /** Submits one request with the client's traceparent and returns the headers its message got. */
  async function admittedHeaders(): Promise<{ requestId: string; headers: Record<string, string> }> {
    const response = await fetch(`${platform.url}/api/v1/inference`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: TRACEPARENT },
      body: JSON.stringify({ prompt: "Once upon a time", max_length: 8 }),
    });
    const body = (await response.json()) as { request_id: string };
    assert.equal(response.status, 202, JSON.stringify(body));
    const seen: Array<Record<string, string>> = [];
    const consumer = await platform.queue.consume(
      platform.queues.requests,
      async (_body, meta) => {
        seen.push(meta.headers);
        return "ack";
      },
      { prefetch: 1 },
    );
    const deadline = Date.now() + 5_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await consumer.drain();
    assert.equal(seen.length, 1);
    return { requestId: body.request_id, headers: seen[0]! };
  }

  it("tracing off: the message gets no header at all", async () => {
    assert.equal(tracingEnabled(), false);
    const { headers } = await admittedHeaders();
    assert.deepEqual(headers, {});
  });

  it("tracing on: the message carries the admission span, in the client's trace", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({ otlpEndpoint: undefined, serviceName: undefined }, "gateway", { exporter });
    try {
      const { requestId, headers } = await admittedHeaders();
      const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(headers.traceparent ?? "");
      assert.ok(match, `traceparent: ${JSON.stringify(headers)}`);
      assert.equal(match[1], CLIENT_TRACE);
      await tracing.forceFlush();
      const admission = exporter.getFinishedSpans().find((s) => s.name === "admission");
      assert.ok(admission, "the admission span was exported");
      assert.equal(admission.spanContext().spanId, match[2], "the message's parent is the admission span");
      assert.equal(admission.parentSpanContext?.spanId, CLIENT_SPAN);
      assert.equal(admission.attributes["ml_inference.request_id"], requestId);
    } finally {
      await tracing.shutdown();
    }
  });
});

/**
 * Tracing helpers: with tracing on, inject/extract carry a trace across a header map (the queue's,
 * an HTTP call's) and spans form one tree; with it off, nothing is created, injected or read.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ProxyTracerProvider, trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { endSpan, extract, inject, parseTraceparent, startSpan, startTracing, tracingEnabled, withSpan, withTraceHeaders } from "./tracing.js";

const CLIENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

describe("tracing off (no endpoint)", () => {
  it("starts no SDK: the same no-op span every time, no headers written or read", async () => {
    const tracing = await startTracing({ otlpEndpoint: undefined, serviceName: undefined }, "gateway");
    assert.equal(tracing.enabled, false);
    assert.equal(tracingEnabled(), false);
    // Nothing registered with the API either: its global provider has no delegate.
    const global = trace.getTracerProvider();
    assert.ok(global instanceof ProxyTracerProvider);
    assert.equal(global.getDelegateTracer("ml-inference"), undefined);
    const a = startSpan("admission", { parent: extract({ traceparent: CLIENT }) });
    const b = startSpan("other");
    assert.equal(a, b, "one shared no-op span, no span objects per call");
    assert.equal(a.isRecording(), false);
    assert.equal(trace.isSpanContextValid(a.spanContext()), false);
    const headers: Record<string, string> = {};
    assert.deepEqual(inject(headers, a), {});
    assert.equal(withTraceHeaders(a), undefined, "publish options stay undefined: the message gets no header");
    const options = { delayMs: 5 };
    assert.equal(withTraceHeaders(a, options), options);
    // extract does not even parse: the client's trace is ignored.
    assert.equal(trace.getSpanContext(extract({ traceparent: CLIENT })), undefined);
    assert.equal(await withSpan("x", {}, async (span) => span), a);
  });
});

describe("tracing on (in-memory exporter)", () => {
  it("inject/extract round trip keeps the trace id; children link to their parents", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = await startTracing({ otlpEndpoint: undefined, serviceName: undefined }, "worker", { exporter });
    try {
      assert.equal(tracingEnabled(), true);
      const root = startSpan("admission", { parent: extract({ traceparent: CLIENT }) });
      const message = inject({ other: "kept" }, root);
      assert.equal(message.other, "kept");
      assert.match(message.traceparent!, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
      const consumer = startSpan("worker", { parent: extract(message) });
      assert.equal(consumer.spanContext().traceId, "0af7651916cd43dd8448eb211c80319c");
      const call = startSpan("model call", { parent: consumer });
      const publish = withTraceHeaders(call, { delayMs: 1, headers: { "x-collect-attempts": "2" } });
      assert.equal(publish?.delayMs, 1);
      assert.equal(publish?.headers?.["x-collect-attempts"], "2");
      assert.equal(parseTraceparent(publish?.headers?.traceparent)?.spanId, call.spanContext().spanId);
      endSpan(call, new Error("boom"));
      endSpan(consumer);
      endSpan(root);
      await tracing.forceFlush();
      const spans = exporter.getFinishedSpans();
      const byName = new Map(spans.map((s) => [s.name, s]));
      assert.equal(spans.length, 3);
      assert.ok(spans.every((s) => s.spanContext().traceId === "0af7651916cd43dd8448eb211c80319c"));
      assert.equal(byName.get("admission")!.parentSpanContext?.spanId, "b7ad6b7169203331");
      assert.equal(byName.get("worker")!.parentSpanContext?.spanId, root.spanContext().spanId);
      assert.equal(byName.get("model call")!.parentSpanContext?.spanId, consumer.spanContext().spanId);
      assert.equal(byName.get("model call")!.status.code, 2 /* ERROR */);
      assert.equal(byName.get("worker")!.resource.attributes["service.name"], "worker");
    } finally {
      await tracing.shutdown();
    }
    assert.equal(tracingEnabled(), false, "shutdown turns it off again");
  });

  it("a missing or malformed traceparent starts a new trace", async () => {
    const tracing = await startTracing({ otlpEndpoint: undefined, serviceName: "svc" }, "gateway", { exporter: new InMemorySpanExporter() });
    try {
      for (const bad of [undefined, "", "garbage", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"]) {
        assert.equal(trace.getSpanContext(extract({ traceparent: bad })), undefined, String(bad));
        const span = startSpan("admission", { parent: extract({ traceparent: bad }) });
        assert.ok(trace.isSpanContextValid(span.spanContext()));
        assert.notEqual(span.spanContext().traceId, "0af7651916cd43dd8448eb211c80319c");
        span.end();
      }
      // A later version may add fields; the first four are read.
      assert.equal(parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more")?.traceId, "0af7651916cd43dd8448eb211c80319c");
      assert.equal(trace.getSpanContext(extract({ traceparent: [CLIENT] }))?.spanId, "b7ad6b7169203331");
    } finally {
      await tracing.shutdown();
    }
  });
});

describe("tracing off loads no SDK", () => {
  // A child process whose module resolution refuses every OpenTelemetry SDK package: tracing off
  // must start and run without touching one; with an endpoint the same child must hit the refusal
  // (which shows the guard works).
  const hooks = `export async function resolve(specifier, context, next) {
    if (/@opentelemetry\\/(sdk-|exporter-|resources)/.test(specifier)) throw new Error("SDK loaded: " + specifier);
    return next(specifier, context);
  }`;
  const guard = `import { register } from "node:module"; register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hooks)}));`;
  const script = (endpoint: string | undefined) => `
    const t = await import(${JSON.stringify(new URL("./tracing.ts", import.meta.url).href)});
    const tracing = await t.startTracing({ otlpEndpoint: ${JSON.stringify(endpoint)}, serviceName: undefined }, "gateway");
    const span = t.startSpan("admission", { parent: t.extract({ traceparent: "${CLIENT}" }) });
    t.endSpan(span);
    await tracing.shutdown();
    console.log(JSON.stringify({ enabled: tracing.enabled, headers: t.withTraceHeaders(span) ?? null }));`;
  const run = async (endpoint: string | undefined) => {
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, ["--import", "tsx", "--import", `data:text/javascript,${encodeURIComponent(guard)}`, "--input-type=module", "-e", script(endpoint)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    return { code, out };
  };

  it("no endpoint: runs with every SDK package refused, and writes no header", async () => {
    const off = await run(undefined);
    assert.equal(off.code, 0, off.out);
    assert.deepEqual(JSON.parse(off.out.trim().split("\n").at(-1)!), { enabled: false, headers: null });
  });

  it("with an endpoint the same guard trips (the SDK is imported only then)", async () => {
    const on = await run("http://127.0.0.1:9/");
    assert.notEqual(on.code, 0);
    assert.match(on.out, /SDK loaded: @opentelemetry\/sdk-trace-base/);
  });
});

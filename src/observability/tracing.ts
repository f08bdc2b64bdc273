/**
 * Traces (OpenTelemetry): every component continues one W3C trace per request, from the client's
 * `traceparent` (or a new trace) through the queue messages' headers, the worker's call to the ML
 * Service and the collector. Spans go out over OTLP/HTTP (JSON) when OTEL_EXPORTER_OTLP_ENDPOINT is
 * set. When it is not, tracing costs nothing: the SDK is never imported (only @opentelemetry/api is,
 * for its types and its one no-op span), startSpan hands back that same no-op span, inject adds no
 * header and extract reads none.
 *
 * Context is passed explicitly (a span or the Context extract returns), not through the API's
 * global context manager: no AsyncLocalStorage hooks on every await, and nothing global to fight
 * over when tests run several components in one process.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, INVALID_SPAN_CONTEXT, trace, type Attributes, type Context, type Span, type SpanContext, type TimeInput, type Tracer } from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";

export { SpanKind, type Span, type Context } from "@opentelemetry/api";

export const TRACEPARENT = "traceparent";

/** The API's non-recording span, made once: what every startSpan returns while tracing is off. */
const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** The SDK's tracer while tracing is on (one per process: main starts it for its component). */
let active: Tracer | undefined;

export interface TracingSettings {
  /** OTLP/HTTP base URL; spans go to `<it>/v1/traces`. Unset (and no exporter): tracing is off. */
  otlpEndpoint: string | undefined;
  /** service.name; unset: the component's name. */
  serviceName: string | undefined;
}

export interface Tracing {
  enabled: boolean;
  /** Sends what is buffered now (tests). */
  forceFlush(): Promise<void>;
  /** Sends what is buffered and turns tracing off; call once the component has stopped. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { enabled: false, forceFlush: async () => undefined, shutdown: async () => undefined };

/**
 * Turns tracing on for this process when an endpoint (or, in tests, an exporter) is given: the SDK
 * is imported only then. Spans are batched (BatchSpanProcessor; the SDK reads OTEL_BSP_* for its
 * delay and sizes) and sampled parent-based, so a client's sampled flag is honoured.
 */
export async function startTracing(settings: TracingSettings, component: string, options: { exporter?: SpanExporter } = {}): Promise<Tracing> {
  const endpoint = settings.otlpEndpoint;
  if (!endpoint && !options.exporter) return OFF;
  const [{ BasicTracerProvider, BatchSpanProcessor }, { resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/resources"),
  ]);
  const exporter =
    options.exporter ?? new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter({ url: `${(endpoint as string).replace(/\/+$/, "")}/v1/traces` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": settings.serviceName ?? component, "service.namespace": "ml-inference", "ml_inference.component": component }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer("ml-inference");
  active = tracer;
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    forceFlush: () => provider.forceFlush(),
    shutdown: () =>
      (stopped ??= (async () => {
        if (active === tracer) active = undefined;
        await provider.shutdown();
      })()),
  };
}

export function tracingEnabled(): boolean {
  return active !== undefined;
}

export interface SpanOptions {
  /** A Context from extract(), or the parent span itself; none: a new trace. */
  parent?: Context | Span;
  kind?: SpanKind;
  attributes?: Attributes;
  startTime?: TimeInput;
}

const isSpan = (v: Context | Span): v is Span => typeof (v as Span).spanContext === "function";

/** A span (the shared no-op one while tracing is off); end it with endSpan or span.end(). */
export function startSpan(name: string, options: SpanOptions = {}): Span {
  if (!active) return NOOP_SPAN;
  const parent = options.parent === undefined ? ROOT_CONTEXT : isSpan(options.parent) ? trace.setSpan(ROOT_CONTEXT, options.parent) : options.parent;
  return active.startSpan(name, { kind: options.kind, attributes: options.attributes, startTime: options.startTime }, parent);
}

/** Ends a span, marked as failed when an error is given. */
export function endSpan(span: Span, error?: unknown, endTime?: TimeInput): void {
  if (span === NOOP_SPAN) return;
  if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end(endTime);
}

/** Runs `work` inside a new span, ended (failed when work throws) when it settles. */
export async function withSpan<T>(name: string, options: SpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  if (!active) return work(NOOP_SPAN);
  const span = startSpan(name, options);
  try {
    const result = await work(span);
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}

/** Writes the span's `traceparent` into headers (nothing while tracing is off); returns headers. */
export function inject<H extends Record<string, string>>(headers: H, span: Span): H & { traceparent?: string } {
  if (!active) return headers;
  const context = span.spanContext();
  if (!trace.isSpanContextValid(context)) return headers;
  (headers as Record<string, string>)[TRACEPARENT] = `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
  return headers;
}

/**
 * Queue publish options carrying the span's traceparent: `options` itself (undefined stays
 * undefined) while tracing is off, so a message then gets no header it did not have.
 */
export function withTraceHeaders(span: Span, options?: PublishOptions): PublishOptions | undefined {
  if (!active) return options;
  return { ...options, headers: inject({ ...options?.headers }, span) };
}

/** MessageQueue.publish's options (src/domain/ports.ts), restated: the domain's types stay its own. */
export interface PublishOptions {
  delayMs?: number;
  headers?: Record<string, string>;
}

/** `to` with the traceparent `from` has (a message published again, as the same step of its trace); `to` itself while off. */
export function carryTraceparent(from: Record<string, string> | undefined, to: Record<string, string>): Record<string, string> {
  const traceparent = active ? from?.[TRACEPARENT] : undefined;
  return traceparent === undefined ? to : { ...to, [TRACEPARENT]: traceparent };
}

/** The Context a `traceparent` header names (ROOT_CONTEXT, a new trace, when absent, invalid or tracing is off). */
export function extract(headers: Record<string, string | string[] | undefined> | undefined): Context {
  if (!active || !headers) return ROOT_CONTEXT;
  const raw = headers[TRACEPARENT];
  const context = parseTraceparent(Array.isArray(raw) ? raw[0] : raw);
  return context ? trace.setSpanContext(ROOT_CONTEXT, context) : ROOT_CONTEXT;
}

const TRACEPARENT_FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** W3C Trace Context level 1: version ff is invalid, version 00 has exactly four fields, ids are not all zeros. */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  const match = value === undefined ? null : TRACEPARENT_FORMAT.exec(value.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  const context: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16) & 0x01, isRemote: true };
  return trace.isSpanContextValid(context) ? context : undefined;
}

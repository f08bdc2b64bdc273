/**
 * The worker's spans for one request message, continuing the trace its headers carry (the
 * gateway's admission span):
 *   queue wait   child of admission, from the request's admission to its consumption here
 *   worker       child of admission, the whole handling (claim, model call, outcome publish)
 *   model call   child of worker, the call to the ML Service (which continues it from the
 *                traceparent it is sent), with time to first token and token counts
 * The outcome message carries the worker span on to the collector. With tracing off every method
 * hands back what it was given and nothing is allocated (one shared no-op object).
 */
import type { RequestMessage } from "../../domain/contracts.js";
import { endSpan, extract, inject, SpanKind, startSpan, tracingEnabled, withTraceHeaders, TRACEPARENT, type PublishOptions, type Span } from "../../observability/tracing.js";
import type { StreamCallbacks, StreamedGeneration } from "./ml-stream.js";

export interface RequestTrace {
  /** Starts the model call span; the headers that send its traceparent to the ML Service (none when off). */
  startCall(): Record<string, string> | undefined;
  /** The callbacks, with the first piece of text timed (time to first token). */
  callbacks(callbacks: StreamCallbacks): StreamCallbacks;
  /** Ends the model call span: the result's token counts, or the error. */
  endCall(result: StreamedGeneration | undefined, error?: unknown): void;
  /** Options for the outcome's publish: the worker span's traceparent in its headers. */
  outcome(options?: PublishOptions): PublishOptions | undefined;
  /** Options for a retry's publish: the incoming traceparent, so every attempt hangs off the admission. */
  retry(options: PublishOptions): PublishOptions;
  end(): void;
}

const OFF: RequestTrace = {
  startCall: () => undefined,
  callbacks: (callbacks) => callbacks,
  endCall: () => undefined,
  outcome: (options) => options,
  retry: (options) => options,
  end: () => undefined,
};

export const MODEL_CALL_ATTRIBUTES = {
  timeToFirstTokenMs: "ml_inference.time_to_first_token_ms",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
} as const;

export function requestTrace(headers: Record<string, string> | undefined, message: RequestMessage, now: Date): RequestTrace {
  if (!tracingEnabled()) return OFF;
  const parent = extract(headers);
  const attributes = { "ml_inference.request_id": message.request_id, "ml_inference.attempt": message.attempt };
  const createdAt = Date.parse(message.created_at);
  // A retry's wait starts at admission too: the span says how long the request waited in all.
  if (Number.isFinite(createdAt) && createdAt <= now.getTime()) {
    endSpan(startSpan("queue wait", { parent, kind: SpanKind.CONSUMER, attributes, startTime: createdAt }), undefined, now);
  }
  const worker = startSpan("worker", { parent, kind: SpanKind.CONSUMER, attributes, startTime: now });
  let call: Span | undefined;
  let callStarted = 0;
  let firstTokenMs: number | undefined;
  const incoming = headers?.[TRACEPARENT];
  return {
    startCall() {
      call = startSpan("model call", { parent: worker, kind: SpanKind.CLIENT, attributes: { "gen_ai.request.model": message.model } });
      callStarted = performance.now();
      return inject({}, call);
    },
    callbacks(callbacks) {
      return {
        onDelta: (text) => {
          firstTokenMs ??= performance.now() - callStarted;
          callbacks.onDelta?.(text);
        },
      };
    },
    endCall(result, error) {
      if (!call) return;
      if (firstTokenMs !== undefined) call.setAttribute(MODEL_CALL_ATTRIBUTES.timeToFirstTokenMs, firstTokenMs);
      if (result) {
        call.setAttributes({
          [MODEL_CALL_ATTRIBUTES.inputTokens]: result.usage.prompt_tokens,
          [MODEL_CALL_ATTRIBUTES.outputTokens]: result.usage.completion_tokens,
          "ml_inference.finish_reason": result.finishReason,
        });
      }
      endSpan(call, error);
      call = undefined;
    },
    outcome: (options) => withTraceHeaders(worker, options),
    retry: (options) => (incoming ? { ...options, headers: { ...options.headers, [TRACEPARENT]: incoming } } : options),
    end() {
      if (call) this.endCall(undefined);
      endSpan(worker);
    },
  };
}

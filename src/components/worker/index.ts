/**
 * ML Worker: consumes `inference_requests` with a bounded prefetch, claims each request's run (a
 * cancel that came first wins: the request is not run), calls the model server with streaming (over
 * keep-alive connections), appends the token deltas of streamed requests to their stream, publishes
 * the outcome to `inference_results` (in bundles: outcome-publisher.ts), and acks the request only
 * after that publish is confirmed. A
 * cancel of a running request aborts its call; the outcome is `cancelled` with what was processed. `processing` is transient state, not a message: when the call
 * started and which attempt it was travel in the final outcome and are stored with the final row. Transient failures come back later through the delayed-retry queue;
 * permanent ones (or attempts used up) become a `failed` outcome with an error code. The worker
 * touches no database.
 */
import { setMaxListeners } from "node:events";
import type { WorkerConfig } from "../../config.js";
import { encodeMessage, parseRequestMessage, storableText, type OutcomeMessage, type RequestMessage } from "../../domain/contracts.js";
import type { Consumer, HandlerVerdict, MessageQueue, RequestStreams, RunStates } from "../../domain/ports.js";
import type { ErrorCode } from "../../errors.js";
import { probeDependencies } from "../../http/server.js";
import type { Logger } from "../../observability/logger.js";
import { counter, gauge, histogram, type Registry } from "../../observability/metrics.js";
import { MlCallError } from "./ml-client.js";
import { generateStream, type StreamCallbacks, type StreamedGeneration } from "./ml-stream.js";
import { DeltaAppender } from "./delta-appender.js";
import { createKeepAliveAgent } from "./http-post.js";
import { CallSlots } from "./call-slots.js";
import { ClaimAhead } from "./claim-ahead.js";

/** Claimed messages kept before the first unclaimed one in line: their calls outlast its claim's round trip. */
const CLAIMS_AHEAD = 4;
/** While messages wait for a slot, an outcome waits this long for others to share its message. */
const OUTCOME_LINGER_MS = 5;
import { requestTrace } from "./trace.js";
import { OutcomePublisher } from "./outcome-publisher.js";
import { TRACEPARENT } from "../../observability/tracing.js";

export interface WorkerDeps {
  logger: Logger;
  registry: Registry;
  queue: MessageQueue;
  streams: RequestStreams;
  runs: RunStates;
  requestsQueue: string;
  resultsQueue: string;
  now?: () => Date;
}

export interface Worker {
  start(): Promise<void>;
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Exponential back-off with ±20% jitter, capped at a minute. */
export function retryDelayMs(baseMs: number, attempt: number, random: () => number = Math.random): number {
  const raw = Math.min(60_000, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

export function createWorker(config: WorkerConfig, deps: WorkerDeps): Worker {
  const now = deps.now ?? (() => new Date());
  const log = deps.logger.child({ component: "worker" });
  const consumed = counter(deps.registry, { name: "messages_consumed_total", help: "Messages consumed, by queue", labelNames: ["queue"]});
  const publishedCount = counter(deps.registry, { name: "messages_published_total", help: "Messages published with a broker confirm, by queue", labelNames: ["queue"]});
  const retried = counter(deps.registry, { name: "messages_retried_total", help: "Requests sent back for a delayed retry"});
  const deadLettered = counter(deps.registry, { name: "messages_dead_lettered_total", help: "Unreadable messages moved to the dead-letter queue, by queue", labelNames: ["queue"]});
  const outcomes = counter(deps.registry, { name: "worker_outcomes_total", help: "Requests finished by the worker, by status and error code", labelNames: ["status", "code"]});
  const outcomesPerMessage = histogram(deps.registry, {
    name: "worker_outcomes_per_message",
    help: "Outcomes carried by each results message (those that finished while the previous publish was being confirmed)",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256]});
  const inFlight = gauge(deps.registry, { name: "worker_requests_in_flight", help: "Requests being processed"});
  const firstTokenSeconds = histogram(deps.registry, {
    name: "worker_time_to_first_token_seconds",
    help: "From the start of a model call to its first generated text",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]});
  const callSeconds = histogram(deps.registry, {
    name: "worker_model_call_seconds",
    help: "Duration of model server calls",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120]});
  const abort = new AbortController();
  // Every running call listens for the worker's stop: WORKER_CONCURRENCY listeners, not a leak.
  setMaxListeners(0, abort.signal);
  let consumer: Consumer | undefined;
  const mlServiceUrl = config.mlServiceUrl;
  if (!mlServiceUrl) throw new Error("worker needs ML_SERVICE_URL");
  /** The requests running now, each with the controller a user's cancel aborts. */
  const running = new Map<string, AbortController>();
  let unwatchCancels: (() => Promise<void>) | undefined;
  // One pool of keep-alive connections for every call: a fresh TCP connection per request costs the
  // worker and the ML Service more CPU than the call itself on a small model.
  const agent = createKeepAliveAgent();
  const slots = new CallSlots(config.concurrency);
  const claims = new ClaimAhead((requestId) => deps.runs.claimRun(requestId), CLAIMS_AHEAD);
  const callModel = (message: RequestMessage, callbacks: StreamCallbacks, signal: AbortSignal, headers?: Record<string, string>): Promise<StreamedGeneration> =>
    generateStream(
      { baseUrl: mlServiceUrl, api: config.mlServiceApi, timeoutMs: config.requestTimeoutMs, agent, token: config.mlServiceToken, headers },
      message,
      callbacks,
      signal,
    );

  const outcomesPublisher = new OutcomePublisher(
    deps.queue,
    deps.resultsQueue,
    (outcomes) => {
      publishedCount.inc({ queue: deps.resultsQueue });
      outcomesPerMessage.observe(outcomes);
    },
    () => (claims.waiting > 0 ? OUTCOME_LINGER_MS : 0),
  );
  const publishOutcome = (outcome: OutcomeMessage, options?: { headers?: Record<string, string> }) =>
    outcomesPublisher.publish(outcome, options?.headers?.[TRACEPARENT]);

  async function handle(body: Buffer, meta?: { headers: Record<string, string> }): Promise<HandlerVerdict> {
    consumed.inc({ queue: deps.requestsQueue });
    const parsed = parseRequestMessage(body);
    if (!parsed.ok) {
      deadLettered.inc({ queue: deps.requestsQueue });
      log.error({ problem: parsed.error }, "unreadable request message sent to the dead-letter queue");
      return "dead_letter";
    }
    const message = parsed.value;
    // Claimed while it waits for a call slot, with the claims of the messages behind it in one round
    // trip (claim-ahead.ts), so no claim is on the slot's path. A cancel that comes after the claim
    // and before the call finds the controller registered here, and the call then ends at once.
    const cancel = new AbortController();
    running.set(message.request_id, cancel);
    try {
      const ticket = claims.enter(message.request_id);
      // The slot is the model call's: it is given back when the call ends, before its outcome is
      // published and its message acked, so the next message held here starts its call at once.
      const freeSlot = await slots.acquire();
      try {
        const claim = await claims.start(ticket);
        return await runMessage(message, meta, freeSlot, claim === "cancelled", cancel);
      } finally {
        freeSlot();
      }
    } finally {
      if (running.get(message.request_id) === cancel) running.delete(message.request_id);
    }
  }

  async function runMessage(
    message: RequestMessage,
    meta: { headers: Record<string, string> } | undefined,
    freeSlot: () => void,
    cancelledBeforeClaim: boolean,
    cancel: AbortController,
  ): Promise<HandlerVerdict> {
    const base = { v: 1 as const, request_id: message.request_id, user_id: message.user_id, attempt: message.attempt };
    const queuedMs = Math.max(0, now().getTime() - Date.parse(message.created_at));
    const trace = requestTrace(meta?.headers, message, now()); // spans: src/components/worker/trace.ts
    // Still queued past its deadline (max_queue_seconds): it never runs, and its reservation is
    // released (the collector gives back what deadline_exceeded does not charge).
    if (message.deadline_at !== undefined && now().getTime() > Date.parse(message.deadline_at)) {
      const waited = Math.round(queuedMs / 1000);
      await publishOutcome(
        { ...base, status: "failed", error: { code: "deadline_exceeded", message: `still queued after ${waited} s, past its max_queue_seconds; it did not run` }, ...(message.stream ? { stream_seq: 0 } : {}), at: now().toISOString() },
        trace.outcome(),
      ).finally(() => trace.end());
      outcomes.inc({ status: "failed", code: "deadline_exceeded" });
      return "ack";
    }
    // A cancel that came before this claim wins: the request is not run. Its outcome is published
    // anyway (the canceller stored it already; a duplicate changes nothing), so that a canceller
    // that died before storing it does not leave the request open.
    if (cancelledBeforeClaim) {
      await publishOutcome({ ...base, status: "cancelled", finish_reason: "cancelled", ...(message.stream ? { stream_seq: 0 } : {}), at: now().toISOString() }, trace.outcome()).finally(() => trace.end());
      outcomes.inc({ status: "cancelled", code: "" });
      return "ack";
    }
    inFlight.inc();
    const stopCall = () => cancel.abort();
    abort.signal.addEventListener("abort", stopCall, { once: true });
    const deltas = message.stream ? new DeltaAppender(deps.streams, message.request_id, log, config.streamFlushMs) : undefined;
    try {
      const startedAt = now().toISOString();
      const started = performance.now();
      try {
        let waiting = true;
        const onDelta = (text: string) => {
          if (waiting) {
            waiting = false;
            firstTokenSeconds.observe((performance.now() - started) / 1000);
          }
          deltas?.add(text);
        };
        const result = await callModel(message, trace.callbacks({ onDelta }), cancel.signal, trace.startCall());
        freeSlot();
        trace.endCall(result);
        if (abort.signal.aborted) throw new MlCallError("worker_error", "the worker is stopping", true);
        const processingMs = performance.now() - started;
        callSeconds.observe(processingMs / 1000);
        const streamSeq = deltas ? await deltas.flush() : undefined;
        const status = result.finishReason === "cancelled" ? "cancelled" : "completed";
        await publishOutcome({
          ...base,
          status,
          model: result.model,
          output_text: storableText(result.outputText),
          ...(result.outputs ? { outputs: result.outputs.map(storableText) } : {}),
          usage: result.usage,
          finish_reason: result.finishReason,
          ...(streamSeq !== undefined ? { stream_seq: streamSeq } : {}),
          timings: { queued_ms: queuedMs, processing_ms: processingMs },
          started_at: startedAt,
          at: now().toISOString(),
        }, trace.outcome());
        outcomes.inc({ status, code: "" });
        log.info({ request_id: message.request_id, status, usage: result.usage, processing_ms: Math.round(processingMs) }, "request finished");
        return "ack";
      } catch (error) {
        freeSlot();
        callSeconds.observe((performance.now() - started) / 1000);
        trace.endCall(undefined, error);
        const failure =
          error instanceof MlCallError ? error : new MlCallError("worker_error", (error as Error).message ?? String(error), true);
        if (abort.signal.aborted) throw failure; // shutting down: requeue, another worker takes it
        const streamSeq = deltas ? await deltas.flush() : undefined;
        // Once its client has seen text, a streamed request is not run again (the text would repeat).
        if (failure.transient && message.attempt < config.maxAttempts && !streamSeq) {
          const delayMs = Math.max(failure.retryAfterMs ?? 0, retryDelayMs(config.retryBaseMs, message.attempt));
          await deps.queue.publish(deps.requestsQueue, encodeMessage({ ...message, attempt: message.attempt + 1 }), trace.retry({ delayMs }));
          retried.inc();
          log.warn({ request_id: message.request_id, attempt: message.attempt, delay_ms: delayMs, code: failure.code }, "model call failed; retrying later");
          return "ack";
        }
        const code: ErrorCode = failure.transient ? "attempts_exhausted" : failure.code;
        await publishOutcome({
          ...base,
          status: "failed",
          error: { code, message: failure.transient ? `gave up after ${message.attempt} attempts: ${failure.message}` : failure.message },
          ...(streamSeq !== undefined ? { stream_seq: streamSeq } : {}),
          timings: { queued_ms: queuedMs, processing_ms: performance.now() - started },
          started_at: startedAt,
          at: now().toISOString(),
        }, trace.outcome());
        outcomes.inc({ status: "failed", code });
        log.warn({ request_id: message.request_id, code, attempt: message.attempt }, "request failed");
        return "ack";
      }
    } finally {
      trace.end();
      inFlight.dec();
      abort.signal.removeEventListener("abort", stopCall);
    }
  }

  return {
    async start() {
      // Watching before consuming: a cancel of a request this worker runs is never missed.
      unwatchCancels = await deps.runs.watchCancels((requestId) => running.get(requestId)?.abort());
      consumer = await deps.queue.consume(deps.requestsQueue, handle, { prefetch: config.prefetch });
      log.info({ queue: deps.requestsQueue, prefetch: config.prefetch, concurrency: config.concurrency, ml_service: config.mlServiceUrl }, "worker consuming");
    },
    async health() {
      await probeDependencies(
        { broker: () => deps.queue.ping() },
        { onFailure: (name, err) => log.warn({ err, dependency: name }, "health: dependency down") },
      );
      return { component: "worker" };
    },
    async stop() {
      if (!consumer) return;
      const drained = consumer.drain();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, config.drainGraceMs)));
      await Promise.race([drained, grace]);
      clearTimeout(timer);
      // Calls still running past the grace are aborted; their messages go back to the queue.
      abort.abort();
      await drained;
      await unwatchCancels?.().catch(() => undefined);
      agent.destroy();
    },
  };
}

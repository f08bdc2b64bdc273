/**
 * ML Worker: consumes `inference_requests` with a bounded prefetch, calls the model server (over
 * keep-alive connections), publishes the outcome to `inference_results`, and acks the request only
 * after that publish is confirmed. `processing` is transient state, not a message: when the call
 * started and which attempt it was travel in the final outcome and are stored with the final row. Transient failures come back later through the delayed-retry queue;
 * permanent ones (or attempts used up) become a `failed` outcome with an error code. The worker
 * touches no database.
 */
import type { WorkerConfig } from "../../config.js";
import { encodeMessage, parseRequestMessage, storableText, type OutcomeMessage, type RequestMessage } from "../../domain/contracts.js";
import type { Consumer, HandlerVerdict, MessageQueue } from "../../domain/ports.js";
import type { ErrorCode } from "../../errors.js";
import { probeDependencies } from "../../http/server.js";
import type { Logger } from "../../observability/logger.js";
import { counter, gauge, histogram, type Registry } from "../../observability/metrics.js";
import { MlCallError, generate, type Generation } from "./ml-client.js";
import { createKeepAliveAgent } from "./http-post.js";

export interface WorkerDeps {
  logger: Logger;
  registry: Registry;
  queue: MessageQueue;
  requestsQueue: string;
  resultsQueue: string;
  now?: () => Date;
  /** Replaces the HTTP call to the model server (used to run the model in the same process). */
  generate?: (message: RequestMessage, signal: AbortSignal) => Promise<Generation>;
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
  const inFlight = gauge(deps.registry, { name: "worker_requests_in_flight", help: "Requests being processed"});
  const callSeconds = histogram(deps.registry, {
    name: "worker_model_call_seconds",
    help: "Duration of model server calls",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120]});
  const abort = new AbortController();
  let consumer: Consumer | undefined;
  const mlServiceUrl = config.mlServiceUrl;
  if (!mlServiceUrl && !deps.generate) throw new Error("worker needs ML_SERVICE_URL");
  // One pool of keep-alive connections for every call: a fresh TCP connection per request costs the
  // worker and the ML Service more CPU than the call itself on a small model.
  const agent = createKeepAliveAgent();
  const callModel =
    deps.generate ??
    ((message: RequestMessage, signal: AbortSignal) =>
      generate({ baseUrl: mlServiceUrl as string, api: config.mlServiceApi, timeoutMs: config.requestTimeoutMs, agent, token: config.mlServiceToken }, message, signal));

  const publishOutcome = async (outcome: OutcomeMessage) => {
    await deps.queue.publish(deps.resultsQueue, encodeMessage(outcome));
    publishedCount.inc({ queue: deps.resultsQueue });
  };

  async function handle(body: Buffer): Promise<HandlerVerdict> {
    consumed.inc({ queue: deps.requestsQueue });
    const parsed = parseRequestMessage(body);
    if (!parsed.ok) {
      deadLettered.inc({ queue: deps.requestsQueue });
      log.error({ problem: parsed.error }, "unreadable request message sent to the dead-letter queue");
      return "dead_letter";
    }
    const message = parsed.value;
    const base = { v: 1 as const, request_id: message.request_id, user_id: message.user_id, attempt: message.attempt };
    const queuedMs = Math.max(0, now().getTime() - Date.parse(message.created_at));
    inFlight.inc();
    try {
      const startedAt = now().toISOString();
      const started = performance.now();
      try {
        const result = await callModel(message, abort.signal);
        const processingMs = performance.now() - started;
        callSeconds.observe(processingMs / 1000);
        await publishOutcome({
          ...base,
          status: "completed",
          model: result.model,
          output_text: storableText(result.outputText),
          ...(result.outputs ? { outputs: result.outputs.map(storableText) } : {}),
          usage: result.usage,
          timings: { queued_ms: queuedMs, processing_ms: processingMs },
          started_at: startedAt,
          at: now().toISOString(),
        });
        outcomes.inc({ status: "completed", code: "" });
        log.info({ request_id: message.request_id, usage: result.usage, processing_ms: Math.round(processingMs) }, "request completed");
        return "ack";
      } catch (error) {
        callSeconds.observe((performance.now() - started) / 1000);
        const failure =
          error instanceof MlCallError ? error : new MlCallError("worker_error", (error as Error).message ?? String(error), true);
        if (abort.signal.aborted) throw failure; // shutting down: requeue, another worker takes it
        if (failure.transient && message.attempt < config.maxAttempts) {
          const delayMs = Math.max(failure.retryAfterMs ?? 0, retryDelayMs(config.retryBaseMs, message.attempt));
          await deps.queue.publish(deps.requestsQueue, encodeMessage({ ...message, attempt: message.attempt + 1 }), { delayMs });
          retried.inc();
          log.warn({ request_id: message.request_id, attempt: message.attempt, delay_ms: delayMs, code: failure.code }, "model call failed; retrying later");
          return "ack";
        }
        const code: ErrorCode = failure.transient ? "attempts_exhausted" : failure.code;
        await publishOutcome({
          ...base,
          status: "failed",
          error: { code, message: failure.transient ? `gave up after ${message.attempt} attempts: ${failure.message}` : failure.message },
          timings: { queued_ms: queuedMs, processing_ms: performance.now() - started },
          started_at: startedAt,
          at: now().toISOString(),
        });
        outcomes.inc({ status: "failed", code });
        log.warn({ request_id: message.request_id, code, attempt: message.attempt }, "request failed");
        return "ack";
      }
    } finally {
      inFlight.dec();
    }
  }

  return {
    async start() {
      consumer = await deps.queue.consume(deps.requestsQueue, handle, { prefetch: config.prefetch });
      log.info({ queue: deps.requestsQueue, prefetch: config.prefetch, ml_service: config.mlServiceUrl }, "worker consuming");
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
      agent.destroy();
    },
  };
}

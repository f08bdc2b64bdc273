/**
 * Results Collector: consumes `inference_results` (final outcomes only: `processing` is transient
 * state, not a message), in the bundles the worker publishes them in. Outcomes are committed in natural batches, as admission inserts them: those
 * that arrive while a batch is being written are gathered into the next, and each batch is stored
 * with its usage ledger rows in one statement (PostgreSQL). Then each outcome's reservation is
 * settled against the real token count, or released on failure (Redis; the outcomes of a batch
 * concurrently), then waiting clients are told, and only then is its message acked. Every step is
 * idempotent, so a duplicate outcome or a redelivery after a crash changes nothing.
 */
import type { CollectorConfig } from "../../config.js";
import { chargedOnFailure } from "../../errors.js";
import { encodeOutcomes, parseOutcomes, type OutcomeMessage } from "../../domain/contracts.js";
import { Batcher } from "../../domain/batching.js";
import type { Consumer, EventBus, FinishInput, HandlerVerdict, MessageQueue, QuotaStore, QuotaWindow, RequestStore, RequestStreams, RequestView } from "../../domain/ports.js";
import { probeDependencies } from "../../http/server.js";
import type { Logger } from "../../observability/logger.js";
import { counter, type Registry } from "../../observability/metrics.js";
import { carryTraceparent, endSpan, extract, SpanKind, startSpan, TRACEPARENT } from "../../observability/tracing.js";

const ATTEMPTS_HEADER = "x-collect-attempts";
const MAX_ATTEMPTS = 8;

export interface CollectorDeps {
  logger: Logger;
  registry: Registry;
  queue: MessageQueue;
  quota: QuotaStore;
  requests: RequestStore;
  events: EventBus;
  /** Streamed requests end their stream with the final event once their outcome is stored and settled. */
  streams: RequestStreams;
  resultsQueue: string;
}

export interface Collector {
  start(): Promise<void>;
  /** Handles one raw outcome message; exposed for tests of idempotency. */
  handle(body: Buffer, meta?: { headers: Record<string, string> }): Promise<HandlerVerdict>;
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function createCollector(config: CollectorConfig, deps: CollectorDeps): Collector {
  // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
  const log = deps.logger.child({ component: "collector" });
  const consumed = counter(deps.registry, { name: "messages_consumed_total", help: "Messages consumed, by queue", labelNames: ["queue"]});
  const deadLettered = counter(deps.registry, { name: "messages_dead_lettered_total", help: "Unreadable messages moved to the dead-letter queue, by queue", labelNames: ["queue"]});
  const collected = counter(deps.registry, { name: "results_collected_total", help: "Final outcomes stored, by status", labelNames: ["status"]});
  const duplicates = counter(deps.registry, { name: "results_duplicates_total", help: "Outcomes for requests already finished (ignored)"});
  const tokensSettled = counter(deps.registry, { name: "tokens_settled_total", help: "Real tokens settled against quotas"});
  let consumer: Consumer | undefined;

  // Outcomes that arrive while one batch is being written are gathered into the next: one statement
  // for many outcomes (at most what the prefetch lets in). Each answers whether its request changed
  // (with the quota window it was reserved in); a request id twice in one batch changes with its
  // first outcome only.
  const finishes = new Batcher<{ input: FinishInput; answer: (window: QuotaWindow | undefined) => void }>(
    async (items) => {
      const { changed } = await deps.requests.finishMany(items.map((item) => item.input));
      for (const item of items) {
        const window = changed.get(item.input.requestId);
        changed.delete(item.input.requestId);
        item.answer(window);
      }
    },
    { maxBatch: Math.max(1, config.prefetch), maxInFlight: 2, lingerMs: config.lingerMs },
  );
  const store = (input: FinishInput) =>
    new Promise<QuotaWindow | undefined>((resolve, reject) => {
      let window: QuotaWindow | undefined;
      finishes.add({ input, answer: (w) => (window = w) }).then(() => resolve(window), reject);
    });

  function finishInput(outcome: OutcomeMessage): FinishInput {
    // A completed outcome without usage cannot be settled honestly: store it as failed. A cancelled
    // one keeps what was generated, and its usage (what was processed) when the model had started.
    // A cancel that came before the model reported anything processed nothing: no usage.
    const reported = outcome.status === "failed" ? null : outcome.usage ?? null;
    const usage = outcome.status === "cancelled" && reported?.total_tokens === 0 ? null : reported;
    const status = outcome.status === "cancelled" ? "cancelled" : outcome.status === "completed" && usage ? "completed" : "failed";
    const kept = status !== "failed";
    return {
      requestId: outcome.request_id,
      status,
      at: new Date(outcome.at),
      outputText: kept ? outcome.output_text ?? "" : null,
      outputs: kept ? outcome.outputs ?? null : null,
      usage,
      finishReason: status === "failed" ? null : outcome.finish_reason ?? (status === "cancelled" ? "cancelled" : null),
      error: status === "failed" ? outcome.error ?? { code: "missing_usage", message: "the model server reported no token usage" } : null,
      attempt: outcome.attempt,
      startedAt: outcome.started_at ? new Date(outcome.started_at) : null,
      charged: status === "failed" && chargedOnFailure(outcome.error?.code ?? ""),
    };
  }

  async function finish(outcome: OutcomeMessage): Promise<void> {
    const input = finishInput(outcome);
    const window = await store(input);
    const changed = window !== undefined;
    // Settle/release even when nothing changed: a crash after the commit and before this point is
    // repaired by the redelivery, and the quota store applies each exactly once per request id.
    const stored = changed ? null : await deps.requests.view(outcome.request_id);
    if (!changed && !stored) {
      // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
      log.warn({ request_id: outcome.request_id }, "outcome for an unknown request ignored");
      return;
    }
    const settledStatus = stored ? stored.status : input.status;
    const settledUsage = stored ? stored.usage : input.usage;
    const charged = stored ? stored.status === "failed" && chargedOnFailure(stored.error?.code ?? "") : input.charged === true;
    // A cancelled request that ran pays for the tokens processed; one that never ran is released.
    const ran = settledStatus === "completed" || (settledStatus === "cancelled" && (settledUsage?.total_tokens ?? 0) > 0);
    if (ran && settledUsage) {
      const result = await deps.quota.settle({ userId: outcome.user_id, requestId: outcome.request_id, actualTokens: settledUsage.total_tokens, window });
      if (result === "settled") tokensSettled.inc(settledUsage.total_tokens);
    } else if (charged) {
      // Failed on its own input (too long a prompt, parameters the model refuses): the request counts.
      await deps.quota.settle({ userId: outcome.user_id, requestId: outcome.request_id, actualTokens: 0, window });
    } else {
      await deps.quota.release({ userId: outcome.user_id, requestId: outcome.request_id, window });
    }
    if (outcome.stream_seq !== undefined) await endStream(outcome, stored, input);
    if (!changed) {
      duplicates.inc();
      // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
      log.info({ request_id: outcome.request_id }, "duplicate outcome ignored");
      // Told again: if the first delivery stored the result but failed before its event went out,
      // waiting clients hear it now (they read the stored result, so a repeat is harmless).
      await deps.events
        .publish({ request_id: outcome.request_id, user_id: outcome.user_id, status: settledStatus, final: true })
        .catch(() => undefined);
      return;
    }
    collected.inc({ status: input.status });
    // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
    log.info({ request_id: outcome.request_id, status: input.status, usage: input.usage }, "result stored");
    await deps.events
      .publish({ request_id: outcome.request_id, user_id: outcome.user_id, status: input.status, final: true })
      // Stryker disable next-line all: logging only
      .catch((error: unknown) => log.warn({ err: error, request_id: outcome.request_id }, "could not notify waiting clients"));
  }

  /**
   * The final event of a streamed request, after its outcome is stored and settled: the stored
   * outcome (the first one, when this is a duplicate), numbered after the worker's last delta.
   */
  async function endStream(outcome: OutcomeMessage, stored: RequestView | null, input: FinishInput): Promise<void> {
    const final = stored ?? { status: input.status, usage: input.usage, finishReason: input.finishReason ?? null, error: input.error };
    await deps.streams.append(outcome.request_id, [
      {
        seq: (outcome.stream_seq ?? 0) + 1,
        type: "final",
        status: final.status === "completed" || final.status === "cancelled" ? final.status : "failed",
        usage: final.usage,
        finishReason: final.finishReason ?? null,
        error: final.error,
      },
    ]);
  }

  /**
   * One results message: a bundle of outcomes (or one, as before bundles), each finished on its own
   * (their stores share statements through the batcher). A store or quota failure is retried later
   * through the delayed-retry queue, only for the outcomes that failed (attempts counted in a
   * header), so one outcome that keeps failing neither spins in a hot loop nor blocks the others;
   * after MAX_ATTEMPTS the message is dead-lettered for inspection and the sweeper eventually
   * expires the request and releases its reservation. Unreadable entries are dead-lettered with
   * their message once the readable ones are finished.
   */
  async function handle(body: Buffer, meta: { headers: Record<string, string> } = { headers: {} }): Promise<HandlerVerdict> {
    consumed.inc({ queue: deps.resultsQueue });
    const parsed = parseOutcomes(body);
    if (!parsed.ok) {
      deadLettered.inc({ queue: deps.resultsQueue });
      // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
      log.error({ problem: parsed.error }, "unreadable outcome message sent to the dead-letter queue");
      return "dead_letter";
    }
    const failed: OutcomeMessage[] = [];
    let failure: unknown;
    await Promise.all(
      parsed.value.outcomes.map(async (outcome) => {
        // Continues the worker's span the outcome carries (the no-op span with tracing off).
        const parent = extract(outcome.traceparent !== undefined ? { [TRACEPARENT]: outcome.traceparent } : meta.headers);
        const span = startSpan("collection", { parent, kind: SpanKind.CONSUMER });
        try {
          await finish(outcome);
          endSpan(span);
        } catch (error) {
          endSpan(span, error);
          failed.push(outcome);
          failure = error;
        }
      }),
    );
    const unreadable = parsed.value.problems;
    // Stryker disable next-line all: logging only
    if (unreadable.length > 0) log.error({ problems: unreadable }, "unreadable outcomes sent to the dead-letter queue with their message");
    if (failed.length > 0) {
      const attempts = Number(meta.headers[ATTEMPTS_HEADER] ?? 0) + 1;
      if (attempts >= MAX_ATTEMPTS) {
        deadLettered.inc({ queue: deps.resultsQueue });
        // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
        log.error({ err: failure, attempts, outcomes: failed.length }, "outcomes could not be stored; sent to the dead-letter queue");
        return "dead_letter";
      }
      const delayMs = Math.min(60_000, 500 * 2 ** (attempts - 1));
      // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
      log.warn({ err: failure, attempts, delay_ms: delayMs, outcomes: failed.length }, "outcomes could not be stored; retrying later");
      // If this publish fails too, the handler throws and the broker redelivers the message.
      await deps.queue.publish(deps.resultsQueue, encodeOutcomes(failed), { delayMs, headers: carryTraceparent(meta.headers, { [ATTEMPTS_HEADER]: String(attempts) }) });
    }
    if (unreadable.length > 0) {
      deadLettered.inc({ queue: deps.resultsQueue });
      return "dead_letter";
    }
    return "ack";
  }

  return {
    handle,
    async start() {
      consumer = await deps.queue.consume(deps.resultsQueue, handle, { prefetch: config.prefetch });
      // Stryker disable next-line ObjectLiteral,StringLiteral: what is logged is not what the collector does
      log.info({ queue: deps.resultsQueue, prefetch: config.prefetch }, "collector consuming");
    },
    async health() {
      await probeDependencies(
        { quota_store: () => deps.quota.ping(), database: () => deps.requests.ping(), broker: () => deps.queue.ping() },
        // Stryker disable next-line all: logging only
        { onFailure: (name, err) => log.warn({ err, dependency: name }, "health: dependency down") },
      );
      return { component: "collector" };
    },
    async stop() {
      await consumer?.drain();
    },
  };
}

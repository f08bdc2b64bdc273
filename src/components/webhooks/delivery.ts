/**
 * The delivery loop, started with the gateway. Each tick claims due deliveries under a lease (one
 * statement, SKIP LOCKED: replicas pass each other by; no transaction is open while sending), POSTs
 * them at most WEBHOOK_CONCURRENCY at a time, and marks each: delivered on a 2xx, else tried again
 * after an exponential back-off with jitter, until WEBHOOK_MAX_ATTEMPT_AGE_MS after the event; then
 * it is given up and its endpoint disabled, saying why. At least once: a replica that dies after
 * sending and before marking lets the lease run out and the event is sent again, with the same
 * `webhook-id` (receivers deduplicate on it). Nothing here runs on a request's path.
 */
import type { WebhookConfig } from "../../config.js";
import { deliveryHeaders, eventBody, nextAttempt, type ClaimedDelivery, type WebhookStore } from "../../domain/webhooks.js";
import type { Logger } from "../../observability/logger.js";
import { counter, gauge, type Registry } from "../../observability/metrics.js";
import { sendWebhook, type SendResult } from "./send.js";

export interface DeliveryLoopDeps {
  config: WebhookConfig;
  store: WebhookStore;
  log: Logger;
  registry: Registry;
  now?: () => Date;
  random?: () => number;
}

/** How long a claim keeps other replicas off a delivery: the POST's own limit and some room. */
const leaseMs = (config: WebhookConfig) => config.timeoutMs * 2 + 5_000;

export class WebhookDeliveryLoop {
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly deliveries;
  private readonly pending;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = true;

  constructor(private readonly deps: DeliveryLoopDeps) {
    this.now = deps.now ?? (() => new Date());
    this.random = deps.random ?? Math.random;
    this.deliveries = counter(deps.registry, {
      name: "webhook_deliveries_total",
      help: "Webhook delivery attempts by result: delivered, retried (failed, tried again later) or given_up (endpoint disabled)",
      labelNames: ["result"],
    });
    this.pending = gauge(deps.registry, { name: "webhook_deliveries_pending", help: "Webhook deliveries not yet made nor given up (as of the last tick)" });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(this.deps.config.pollIntervalMs);
  }

  /** Stops claiming, then waits for the deliveries in flight (each bounded by WEBHOOK_TIMEOUT_MS). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await Promise.all(this.inFlight);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      let full = false;
      void this.claimAndSend()
        .then((claimed) => (full = claimed > 0))
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "webhook delivery failed; trying again next tick"))
        // A claim that found work may have left more due: the next tick comes at once.
        .finally(() => this.schedule(full ? 0 : this.deps.config.pollIntervalMs));
    }, delayMs);
    this.timer.unref?.();
  }

  /** One pass, and the deliveries it started (tests; the timer does not wait for them). */
  async tick(): Promise<number> {
    const before = new Set(this.inFlight);
    const claimed = await this.claimAndSend();
    await Promise.all([...this.inFlight].filter((p) => !before.has(p)));
    return claimed;
  }

  /**
   * Claims what there is room for and starts sending it without waiting: one receiver that hangs
   * holds one of the WEBHOOK_CONCURRENCY places until its timeout, not the loop. Concurrent calls
   * share the claim in progress.
   */
  private claimAndSend(): Promise<number> {
    this.running ??= this.claim().finally(() => (this.running = undefined));
    return this.running;
  }

  private async claim(): Promise<number> {
    const { store, config } = this.deps;
    const room = config.concurrency - this.inFlight.size;
    if (room > 0) {
      const now = this.now();
      const claimed = await store.claimDue(now, new Date(now.getTime() + leaseMs(config)), room);
      for (const delivery of claimed) {
        const sending: Promise<void> = this.deliver(delivery).finally(() => this.inFlight.delete(sending));
        this.inFlight.add(sending);
      }
      this.pending.set(await store.countPending());
      return claimed.length;
    }
    return 0;
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const { store, config, log } = this.deps;
    const body = eventBody(delivery);
    let result: SendResult;
    try {
      result = await sendWebhook(delivery.url, body, deliveryHeaders(delivery.secret, delivery, body, this.now()), { timeoutMs: config.timeoutMs, allowPrivate: config.allowPrivate });
    } catch (error) {
      result = { ok: false, error: `could not send: ${(error as Error).message}` };
    }
    const at = this.now();
    try {
      if (result.ok) {
        await store.markDelivered(delivery.deliveryId, at);
        this.deliveries.inc({ result: "delivered" });
        return;
      }
      const decision = nextAttempt({ baseMs: config.retryBaseMs, maxDelayMs: config.retryMaxMs, maxAgeMs: config.maxAttemptAgeMs }, delivery.attempts, delivery.createdAt, at, this.random());
      if ("retryAt" in decision) {
        await store.reschedule(delivery.deliveryId, decision.retryAt, result.error, at);
        this.deliveries.inc({ result: "retried" });
        return;
      }
      const hours = Math.round((config.maxAttemptAgeMs / 3_600_000) * 100) / 100;
      const reason = `event ${delivery.eventId} could not be delivered in ${delivery.attempts} attempts over ${hours} h; last error: ${result.error}`;
      await store.giveUp(delivery.deliveryId, result.error, reason, at);
      this.deliveries.inc({ result: "given_up" });
      log.warn({ endpoint_id: delivery.endpointId, event_id: delivery.eventId, attempts: delivery.attempts }, "webhook endpoint disabled: deliveries kept failing");
    } catch (error) {
      // The lease runs out and the delivery is claimed again.
      log.warn({ err: error, delivery_id: delivery.deliveryId }, "webhook delivery outcome not stored; it will be sent again");
    }
  }
}

/**
 * Background repair, safe to run on every gateway replica (rows are locked while in hand):
 * - requests stored but never published (a crash between INSERT and publish) are published again;
 * - requests open for longer than the reservation timeout are failed and their reservations released,
 *   so abandoned reservations never hold a user's quota forever.
 */
import type { GatewayConfig } from "../../config.js";
import { encodeMessage } from "../../domain/contracts.js";
import { requestMessageOf } from "../../domain/request-message.js";
import type { EventBus, MessageQueue, QuotaStore, RequestStore } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";
import type { Counter, Gauge } from "../../observability/metrics.js";

export interface SweeperDeps {
  logger: Logger;
  quota: QuotaStore;
  requests: RequestStore;
  queue: MessageQueue;
  events: EventBus;
  requestsQueue: string;
  now: () => Date;
  openGauge: Gauge;
  published: Counter<"queue">;
}

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly config: Pick<GatewayConfig, "sweepIntervalMs" | "sweepUnpublishedAfterMs" | "reservationTimeoutMs">,
    private readonly deps: SweeperDeps,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.sweep().then(() => undefined).finally(() => (this.running = undefined));
    }, this.config.sweepIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  async sweep(): Promise<{ republished: number; expired: number }> {
    const { deps } = this;
    const now = deps.now();
    let republished = 0;
    let expired = 0;
    try {
      republished = await deps.requests.republishUnpublished(
        new Date(now.getTime() - this.config.sweepUnpublishedAfterMs),
        100,
        async (request) => {
          await deps.queue.publish(deps.requestsQueue, encodeMessage(requestMessageOf(request)));
          deps.published.inc({ queue: deps.requestsQueue });
        },
      );
      if (republished > 0) deps.logger.warn({ count: republished }, "published requests that were stored but never published");
      const stale = await deps.requests.expireStale(
        new Date(now.getTime() - this.config.reservationTimeoutMs),
        100,
        now,
        async (request) => void (await deps.quota.release(request)),
      );
      for (const request of stale) {
        await deps.events
          .publish({ request_id: request.requestId, user_id: request.userId, status: "failed", final: true, error: { code: "timeout" } })
          .catch(() => undefined);
        deps.logger.warn({ request_id: request.requestId }, "request timed out; reservation released");
      }
      expired = stale.length;
      deps.openGauge.set(await deps.requests.countOpen());
    } catch (error) {
      deps.logger.warn({ err: error }, "sweep failed; will try again");
    }
    return { republished, expired };
  }
}

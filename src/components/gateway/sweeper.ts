/**
 * Background repair, safe to run on every gateway replica (each claims its rows under a lease):
 * - requests stored but never published (a crash between INSERT and publish) are published again;
 * - requests open for longer than the reservation timeout are failed and their reservations released,
 *   so abandoned reservations never hold a user's quota forever;
 * - Batch API files past their expires_at are deleted (one short statement; they were already not
 *   found from the moment they expired).
 * Each step is claim (one short statement) → broker or quota store, with no transaction open and no
 * row locked → mark or release the claim (one short statement). A slow broker or Redis therefore
 * holds no database connection; a replica that dies mid-step leaves a lease that runs out.
 */
import type { GatewayConfig } from "../../config.js";
import { encodeMessage } from "../../domain/contracts.js";
import { requestMessageOf } from "../../domain/request-message.js";
import type { EventBus, Lease, MessageQueue, Outbox, QuotaStore, RequestStore, StaleRequests, StoredRequest } from "../../domain/ports.js";
import type { BatchStore } from "../../domain/batches.js";
import type { Logger } from "../../observability/logger.js";
import type { Counter, Gauge } from "../../observability/metrics.js";

/** Rows one step claims per sweep. */
const BATCH = 100;

export interface SweeperDeps {
  logger: Logger;
  quota: QuotaStore;
  requests: RequestStore;
  outbox: Outbox;
  stale: StaleRequests;
  batches: Pick<BatchStore, "deleteExpiredFiles">;
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
    private readonly config: Pick<GatewayConfig, "sweepIntervalMs" | "sweepUnpublishedAfterMs" | "sweepLeaseMs" | "reservationTimeoutMs">,
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

  async sweep(): Promise<{ republished: number; expired: number; expiredFiles: number }> {
    const { deps } = this;
    const now = deps.now();
    const lease: Lease = { now, ms: this.config.sweepLeaseMs };
    let republished = 0;
    let expired = 0;
    try {
      republished = await this.republish(new Date(now.getTime() - this.config.sweepUnpublishedAfterMs), lease);
      if (republished > 0) deps.logger.warn({ count: republished }, "published requests that were stored but never published");
      expired = await this.expire(new Date(now.getTime() - this.config.reservationTimeoutMs), lease);
      deps.openGauge.set(await deps.requests.countOpen());
    } catch (error) {
      deps.logger.warn({ err: error }, "sweep failed; will try again");
    }
    let expiredFiles = 0;
    try {
      expiredFiles = await deps.batches.deleteExpiredFiles(now, BATCH);
      if (expiredFiles > 0) deps.logger.info({ count: expiredFiles }, "expired batch files deleted");
    } catch (error) {
      deps.logger.warn({ err: error }, "expired batch files not deleted; will try again");
    }
    return { republished, expired, expiredFiles };
  }

  /** Publishes the claimed requests; those the broker confirmed are marked, the others given back. */
  private async republish(olderThan: Date, lease: Lease): Promise<number> {
    const { deps } = this;
    const claimed = await deps.outbox.claim(olderThan, BATCH, lease);
    if (claimed.length === 0) return 0;
    const outcomes = await Promise.allSettled(claimed.map((request) => deps.queue.publish(deps.requestsQueue, encodeMessage(requestMessageOf(request)))));
    const { done, failed, firstError } = split(claimed.map((r) => r.requestId), outcomes);
    await deps.outbox.markPublished(done);
    if (failed.length > 0) {
      await deps.outbox.releaseClaim(failed);
      deps.logger.warn({ err: firstError, count: failed.length }, "could not publish stored requests; the next sweep tries again");
    }
    if (done.length > 0) deps.published.inc({ queue: deps.requestsQueue }, done.length);
    return done.length;
  }

  /** Releases the claimed requests' reservations, then fails those still open with `timeout`. */
  private async expire(olderThan: Date, lease: Lease): Promise<number> {
    const { deps } = this;
    const claimed = await deps.stale.claim(olderThan, BATCH, lease);
    if (claimed.length === 0) return 0;
    const outcomes = await Promise.allSettled(claimed.map((request) => deps.quota.release(request)));
    const { done, failed, firstError } = split(claimed.map((r) => r.requestId), outcomes);
    if (failed.length > 0) {
      // Left open with its reservation, for a later sweep: no reservation is ever left behind.
      await deps.stale.releaseClaim(failed);
      deps.logger.warn({ err: firstError, count: failed.length }, "could not release reservations of stale requests; the next sweep tries again");
    }
    const expired = await deps.stale.expire(done, lease.now);
    for (const request of expired) {
      await deps.events
        .publish({ request_id: request.requestId, user_id: request.userId, status: "failed", final: true, error: { code: "timeout" } })
        .catch(() => undefined);
      deps.logger.warn({ request_id: request.requestId }, "request timed out; reservation released");
    }
    return expired.length;
  }
}

function split(ids: string[], outcomes: PromiseSettledResult<unknown>[]): { done: string[]; failed: string[]; firstError: unknown } {
  const done: string[] = [];
  const failed: string[] = [];
  let firstError: unknown;
  outcomes.forEach((outcome, i) => {
    if (outcome.status === "fulfilled") done.push(ids[i] as string);
    else {
      failed.push(ids[i] as string);
      firstError ??= outcome.reason;
    }
  });
  return { done, failed, firstError };
}

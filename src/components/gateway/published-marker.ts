/**
 * The outbox's mark step on the admission path: marks admitted requests as published in batches,
 * one UPDATE per batch instead of one per request. A crash before a flush only means the sweeper
 * publishes those requests again, which the collector's idempotency makes harmless.
 */
import type { Outbox } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";

export class PublishedMarker {
  private pending: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly outbox: Pick<Outbox, "markPublished">,
    private readonly logger: Logger,
    private readonly options: { maxBatch: number; maxDelayMs: number } = { maxBatch: 500, maxDelayMs: 50 },
  ) {}

  add(requestId: string): void {
    this.pending.push(requestId);
    if (this.pending.length >= this.options.maxBatch) void this.flush();
    else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.options.maxDelayMs);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(() =>
      this.outbox.markPublished(batch).catch((error: unknown) => {
        // Left unpublished, the sweeper will publish them again later: harmless, so only log.
        this.logger.warn({ err: error, count: batch.length }, "could not mark requests published");
      }),
    );
    return this.flushing;
  }
}

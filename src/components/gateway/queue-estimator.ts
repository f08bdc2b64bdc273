/**
 * The gateway's view of the queue, for the estimate every accepted request carries and for
 * deadlines (max_queue_seconds): a snapshot of the backlog and of what finished lately, read every
 * QUEUE_ESTIMATE_INTERVAL_MS, plus what this replica admitted since less what the measured rate
 * drained meanwhile (so a burst between two reads counts, and steady traffic does not pile up).
 * GET /api/v1/queue shows it with the caller's own place.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { AppError } from "../../errors.js";
import type { BacklogStats } from "../../domain/ports.js";
import { deadlineRefusal, drainRate, estimateFor, type Enqueueing, type Estimate, type QueueSnapshot } from "../../domain/queue-estimate.js";
import type { Authenticator } from "../../http/authenticator.js";
import type { Logger } from "../../observability/logger.js";
import { unavailableOnFailure } from "./admission.js";

export interface QueueEstimatorDeps {
  stats: BacklogStats;
  log: Logger;
  intervalMs: number;
  windowSeconds: number;
  /** The throughput is measured over the last this many finished requests (within the window). */
  recentRequests: number;
  now: () => Date;
}

/**
 * Each read counts the open requests (their index entries and rows: about 0.4 µs each, 25,000 in
 * some 10 ms), so a deep backlog is read less often: this many milliseconds of wait per open
 * request keeps the reads under about 2 % of a database connection's time, and a deep backlog's
 * estimate is moved little by a count a moment old. Spaced by what was counted, not by how long
 * the read took: on a loaded machine that is mostly waiting, and would space the reads of a short
 * queue too. (At a fixed 100 ms, a drain of 25,000 queued requests paid 170 µs of PostgreSQL CPU
 * per request for the reads: `npm run bench`, phase d.)
 */
const WAIT_MS_PER_OPEN_REQUEST = 0.02;

/** The wait before the next read, after one that counted `openRequests`. */
export const nextReadDelay = (intervalMs: number, openRequests: number) => Math.max(intervalMs, openRequests * WAIT_MS_PER_OPEN_REQUEST);

/** Weight of each admission's time to publish in the running mean. */
const ENQUEUE_SMOOTHING = 0.05;

export class QueueEstimator {
  private snapshot: QueueSnapshot | undefined;
  private admittedSince = 0;
  /** Mean seconds from an admission's start to its publish, and arrivals ÷ throughput over the last read's interval. */
  private joining: Enqueueing = { enqueueSeconds: 0, arrivalShare: 0 };
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly deps: QueueEstimatorDeps) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = () => {
      if (this.stopped) return;
      void this.refresh()
        .catch((error: unknown) => this.deps.log.warn({ err: error }, "queue estimate not refreshed; keeping the last one"))
        .finally(() => {
          if (this.stopped) return;
          this.timer = setTimeout(loop, nextReadDelay(this.deps.intervalMs, this.snapshot?.openRequests ?? 0));
          this.timer.unref?.();
        });
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Reads the backlog now (also what the timer does). */
  async refresh(): Promise<QueueSnapshot> {
    const snapshot = await this.deps.stats.snapshot(this.deps.windowSeconds, this.deps.now(), this.deps.recentRequests);
    const previous = this.snapshot;
    const rate = drainRate(snapshot);
    const interval = previous ? (snapshot.at.getTime() - previous.at.getTime()) / 1000 : 0;
    if (interval > 0) this.joining.arrivalShare = rate === null ? 0 : Math.min(1, this.admittedSince / interval / rate);
    this.snapshot = snapshot;
    this.admittedSince = 0;
    return snapshot;
  }

  /** The estimate for a request of this size admitted now; null before the first read or without a throughput. */
  estimate(estimatedTokens: number): Estimate | null {
    if (!this.snapshot) return null;
    const now = this.deps.now();
    const drained = (drainRate(this.snapshot) ?? 0) * Math.max(0, (now.getTime() - this.snapshot.at.getTime()) / 1000);
    const open = Math.max(0, this.snapshot.openEstimatedTokens + this.admittedSince - drained);
    return estimateFor({ ...this.snapshot, openEstimatedTokens: open }, estimatedTokens, now, this.joining);
  }

  /** Throws queue_deadline_unmeetable when a request of this size would not start within maxQueueSeconds. */
  checkDeadline(estimatedTokens: number, maxQueueSeconds: number): Estimate | null {
    const estimate = this.estimate(estimatedTokens);
    const retryAfter = deadlineRefusal(estimate, maxQueueSeconds);
    if (retryAfter !== undefined) {
      throw new AppError(
        "queue_deadline_unmeetable",
        `the queue would make this request wait about ${Math.ceil(estimate?.startInSeconds ?? 0)} s, longer than its max_queue_seconds of ${maxQueueSeconds}; nothing was reserved`,
        { retryAfterSeconds: retryAfter, details: { field: "max_queue_seconds", estimated_wait_seconds: Math.ceil(estimate?.startInSeconds ?? 0) } },
      );
    }
    return estimate;
  }

  /** Counts an admission into the backlog until the next read; `enqueueSeconds`: from its start to its publish. */
  admitted(estimatedTokens: number, enqueueSeconds = 0): void {
    this.admittedSince += estimatedTokens;
    this.joining.enqueueSeconds += ENQUEUE_SMOOTHING * (Math.max(0, enqueueSeconds) - this.joining.enqueueSeconds);
  }
}

/** GET /api/v1/queue: the backlog by priority (interactive requests first, then batch lines), the throughput, and the caller's own place. */
export function registerQueueRoute(
  app: FastifyInstance,
  ctx: { auth: Authenticator; stats: BacklogStats; estimator: QueueEstimator; fail: (reply: FastifyReply, error: unknown) => unknown; now: () => Date },
): void {
  app.get("/api/v1/queue", async (request, reply) => {
    try {
      const user = await ctx.auth.authenticate(request.headers.authorization);
      const [snapshot, mine] = await unavailableOnFailure("database", () =>
        Promise.all([ctx.estimator.refresh(), ctx.stats.positionOf(user.userId)]),
      );
      const rate = drainRate(snapshot);
      const wait = (tokens: number) => (rate === null ? (tokens === 0 ? 0 : null) : Math.round((tokens / rate) * 10) / 10);
      const now = ctx.now();
      const yourWait = mine.open > 0 ? wait(mine.aheadEstimatedTokens) : null;
      return {
        object: "queue",
        at: snapshot.at.toISOString(),
        backlog: {
          interactive: { requests: snapshot.openRequests, estimated_tokens: snapshot.openEstimatedTokens },
          batch: { pending_lines: snapshot.pendingBatchLines },
        },
        throughput: {
          window_seconds: snapshot.windowSeconds,
          requests_per_second: Math.round((snapshot.finishedRequests / snapshot.windowSeconds) * 100) / 100,
          estimated_tokens_per_second: rate === null ? 0 : Math.round(rate * 10) / 10,
          mean_run_seconds: snapshot.meanRunSeconds,
        },
        estimated_wait_seconds: wait(snapshot.openEstimatedTokens),
        yours: {
          open: mine.open,
          position: mine.open > 0 ? mine.ahead + 1 : null,
          estimated_start_at: yourWait === null ? null : new Date(now.getTime() + yourWait * 1000).toISOString(),
        },
      };
    } catch (error) {
      return ctx.fail(reply, error);
    }
  });
}

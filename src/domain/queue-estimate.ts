/**
 * How long the queue makes a request wait, from the backlog ahead of it and the throughput just
 * measured. Both are counted in estimated tokens (the reservation's bound: prompt bytes plus the
 * tokens asked for), so the bound's overshoot cancels out: a backlog of B estimated tokens drains
 * in B ÷ (estimated tokens finished per second). The backlog counts the requests running too (the
 * store does not tell them apart), so by Little's law the time in the system is B ÷ rate and the
 * wait before the start is that less the mean run. A request's own run takes the recent mean run
 * time, scaled by its size against the recent mean size.
 *
 * A request stays open in the store a while after it finished (its outcome is on its way to the
 * collector), and the mean run ends at the finish, not at the store's record of it: those requests
 * are neither running nor ahead. They are what finished since the latest finish recorded, about
 * (now − that finish − one interval between finishes) of throughput, so that much more time comes
 * off the wait. (Without it the bench's estimate overshot the start by a fifth at steady load.)
 *
 * The estimate is made as the admission begins; the request joins the queue when its message is
 * published, a moment later (`enqueueSeconds`). Meanwhile the queue drains at the throughput and
 * fills with the other admissions, so the time to join adds to the wait in the proportion of the
 * arrivals to the throughput (`arrivalShare`): all of it in a steady stream, none when nothing else
 * is arriving. (Without it the estimate fell short by the admission's own latency.)
 */

export interface QueueSnapshot {
  /** When it was read. */
  at: Date;
  /** Requests admitted and not finished (queued or running), and their estimated tokens. */
  openRequests: number;
  openEstimatedTokens: number;
  /** Batch lines not yet dispatched: they wait behind every open request. */
  pendingBatchLines: number;
  /** Requests finished in the last `windowSeconds`, their estimated tokens and mean run time. */
  windowSeconds: number;
  finishedRequests: number;
  finishedEstimatedTokens: number;
  meanRunSeconds: number | null;
  /** The latest finish among those counted (null when none). */
  lastFinishedAt: Date | null;
}

/** The admission's own part: seconds from its start to its message's publish, and arrivals ÷ throughput (0–1). */
export interface Enqueueing {
  enqueueSeconds: number;
  arrivalShare: number;
}

export interface Estimate {
  /** Seconds until a request admitted now starts. */
  startInSeconds: number;
  startAt: Date;
  finishAt: Date;
}

/** Estimated tokens finished per second; null when nothing finished lately (no measurement). */
export function drainRate(s: QueueSnapshot): number | null {
  if (s.windowSeconds <= 0 || s.finishedEstimatedTokens <= 0) return null;
  return s.finishedEstimatedTokens / s.windowSeconds;
}

/**
 * Seconds of finishes the store has not recorded yet: since the latest recorded finish, less the
 * interval one expects between finishes anyway. Zero without a rate.
 */
export function unrecordedSeconds(s: QueueSnapshot): number {
  if (s.lastFinishedAt === null || s.finishedRequests <= 0 || s.windowSeconds <= 0) return 0;
  const interval = s.windowSeconds / s.finishedRequests;
  return Math.max(0, (s.at.getTime() - s.lastFinishedAt.getTime()) / 1000 - interval);
}

/**
 * The estimate for a request of `estimatedTokens` admitted at `now` behind the snapshot's backlog:
 * null when there is a backlog but no throughput to measure its drain by (nothing finished lately).
 */
export function estimateFor(s: QueueSnapshot, estimatedTokens: number, now: Date, joining?: Enqueueing): Estimate | null {
  const rate = drainRate(s);
  if (rate === null && s.openEstimatedTokens > 0) return null;
  const meanSize = s.finishedRequests > 0 ? s.finishedEstimatedTokens / s.finishedRequests : 0;
  const meanRun = s.meanRunSeconds ?? 0;
  const queued = rate === null ? 0 : Math.max(0, s.openEstimatedTokens / rate - meanRun - unrecordedSeconds(s));
  const joinSeconds = joining ? Math.max(0, joining.enqueueSeconds) * Math.min(1, Math.max(0, joining.arrivalShare)) : 0;
  const startInSeconds = queued + joinSeconds;
  const runSeconds = meanSize > 0 ? meanRun * (estimatedTokens / meanSize) : 0;
  const startAt = new Date(now.getTime() + startInSeconds * 1000);
  return { startInSeconds, startAt, finishAt: new Date(startAt.getTime() + runSeconds * 1000) };
}

/**
 * For a request that may wait at most `maxQueueSeconds`: undefined when it can be admitted (or
 * nothing can be told), else the seconds after which the backlog should be short enough.
 */
export function deadlineRefusal(estimate: Estimate | null, maxQueueSeconds: number): number | undefined {
  if (!estimate || estimate.startInSeconds <= maxQueueSeconds) return undefined;
  return Math.max(1, Math.ceil(estimate.startInSeconds - maxQueueSeconds));
}

/** The estimate as answers carry it (ISO times; null when there is none). */
export function etaBody(estimate: Estimate | null): { estimated_start_at: string; estimated_finish_at: string } | { estimated_start_at: null; estimated_finish_at: null } {
  if (!estimate) return { estimated_start_at: null, estimated_finish_at: null };
  return { estimated_start_at: estimate.startAt.toISOString(), estimated_finish_at: estimate.finishAt.toISOString() };
}

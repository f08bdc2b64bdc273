/**
 * How long the queue makes a request wait, from the backlog ahead of it and the throughput just
 * measured. Both are counted in estimated tokens (the reservation's bound: prompt bytes plus the
 * tokens asked for), so the bound's overshoot cancels out: a backlog of B estimated tokens drains
 * in B ÷ (estimated tokens finished per second). The backlog counts the requests running too (the
 * store does not tell them apart), so by Little's law the time in the system is B ÷ rate and the
 * wait before the start is that less the mean run. A request's own run takes the recent mean run
 * time, scaled by its size against the recent mean size.
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
 * The estimate for a request of `estimatedTokens` admitted at `now` behind the snapshot's backlog:
 * null when there is a backlog but no throughput to measure its drain by (nothing finished lately).
 */
export function estimateFor(s: QueueSnapshot, estimatedTokens: number, now: Date): Estimate | null {
  const rate = drainRate(s);
  if (rate === null && s.openEstimatedTokens > 0) return null;
  const meanSize = s.finishedRequests > 0 ? s.finishedEstimatedTokens / s.finishedRequests : 0;
  const meanRun = s.meanRunSeconds ?? 0;
  const startInSeconds = rate === null ? 0 : Math.max(0, s.openEstimatedTokens / rate - meanRun);
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

/** The queue's backlog and recent throughput, read from the requests table (for estimates and GET /api/v1/queue). */
import type { BacklogStats, QueuePosition } from "../../domain/ports.js";
import type { QueueSnapshot } from "../../domain/queue-estimate.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

/** Finishes closer together than this (a batch step ending many at once) are not taken for a rate. */
const MIN_WINDOW_SECONDS = 0.1;

export class SqlBacklogStats implements BacklogStats {
  constructor(private readonly db: SqlClient) {}

  /**
   * What finished lately is the last `recentRequests` requests finished within `windowSeconds`
   * (all of them when it is absent). When that many did, the window shrinks to the time between the
   * first and the last of them, so that a high throughput is measured over its last moments, and a
   * change in it shows within a fraction of a second; a low one still over the whole window.
   */
  async snapshot(windowSeconds: number, now: Date, recentRequests?: number): Promise<QueueSnapshot> {
    type Row = {
      open_requests: number; open_tokens: number; pending_lines: number; finished: number; finished_tokens: number; mean_run_seconds: number | null;
      first_finished_at: Date | null; last_finished_at: Date | null; first_tokens: number | null;
    };
    const since = new Date(now.getTime() - windowSeconds * 1000);
    const row = (await this.db.query<Row>(sql("queueSnapshot"), [since, recentRequests ?? null])).rows[0];
    let finished = Number(row?.finished ?? 0);
    let finishedTokens = Number(row?.finished_tokens ?? 0);
    let window = windowSeconds;
    if (recentRequests !== undefined && finished >= recentRequests && finished > 1 && row?.first_finished_at && row.last_finished_at) {
      // Between the first and the last finish lie the others' finishes: the first one is left out.
      window = Math.max(MIN_WINDOW_SECONDS, (new Date(row.last_finished_at).getTime() - new Date(row.first_finished_at).getTime()) / 1000);
      finished -= 1;
      finishedTokens -= Number(row.first_tokens ?? 0);
    }
    return {
      at: now,
      openRequests: Number(row?.open_requests ?? 0),
      openEstimatedTokens: Number(row?.open_tokens ?? 0),
      pendingBatchLines: Number(row?.pending_lines ?? 0),
      windowSeconds: window,
      finishedRequests: finished,
      finishedEstimatedTokens: finishedTokens,
      meanRunSeconds: row?.mean_run_seconds === null || row?.mean_run_seconds === undefined ? null : Number(row.mean_run_seconds),
      lastFinishedAt: row?.last_finished_at ? new Date(row.last_finished_at) : null,
    };
  }

  async positionOf(userId: string): Promise<QueuePosition> {
    type Row = { open: number; ahead: number; ahead_tokens: number };
    const row = (await this.db.query<Row>(sql("queuePosition"), [userId])).rows[0];
    return { open: Number(row?.open ?? 0), ahead: Number(row?.ahead ?? 0), aheadEstimatedTokens: Number(row?.ahead_tokens ?? 0) };
  }
}

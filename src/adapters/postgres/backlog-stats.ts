/** The queue's backlog and recent throughput, read from the requests table (for estimates and GET /api/v1/queue). */
import type { BacklogStats, QueuePosition } from "../../domain/ports.js";
import type { QueueSnapshot } from "../../domain/queue-estimate.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

export class SqlBacklogStats implements BacklogStats {
  constructor(private readonly db: SqlClient) {}

  async snapshot(windowSeconds: number, now: Date): Promise<QueueSnapshot> {
    type Row = { open_requests: number; open_tokens: number; pending_lines: number; finished: number; finished_tokens: number; mean_run_seconds: number | null };
    const since = new Date(now.getTime() - windowSeconds * 1000);
    const row = (await this.db.query<Row>(sql("queueSnapshot"), [since])).rows[0];
    return {
      at: now,
      openRequests: Number(row?.open_requests ?? 0),
      openEstimatedTokens: Number(row?.open_tokens ?? 0),
      pendingBatchLines: Number(row?.pending_lines ?? 0),
      windowSeconds,
      finishedRequests: Number(row?.finished ?? 0),
      finishedEstimatedTokens: Number(row?.finished_tokens ?? 0),
      meanRunSeconds: row?.mean_run_seconds === null || row?.mean_run_seconds === undefined ? null : Number(row.mean_run_seconds),
    };
  }

  async positionOf(userId: string): Promise<QueuePosition> {
    type Row = { open: number; ahead: number; ahead_tokens: number };
    const row = (await this.db.query<Row>(sql("queuePosition"), [userId])).rows[0];
    return { open: Number(row?.open ?? 0), ahead: Number(row?.ahead ?? 0), aheadEstimatedTokens: Number(row?.ahead_tokens ?? 0) };
  }
}

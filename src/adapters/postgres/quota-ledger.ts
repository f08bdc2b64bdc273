/** The durable side of the quota: what one user's Redis counters are rebuilt from. */
import type { QuotaLedger, QuotaSnapshot } from "../../domain/ports.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

export class SqlQuotaLedger implements QuotaLedger {
  constructor(private readonly db: SqlClient) {}

  async userSnapshot(userId: string, month: string): Promise<QuotaSnapshot> {
    type DayRow = { quota_day: string; requests: number; tokens: number | string };
    type OpenRow = { request_id: string; user_id: string; quota_day: string; tokens: number };
    const [days, open] = await Promise.all([
      this.db.query<DayRow>(sql("userLedgerDays"), [userId, month]),
      this.db.query<OpenRow>(sql("userOpenReservations"), [userId]),
    ]);
    return {
      settledDays: days.rows.map((r) => ({ day: String(r.quota_day), requests: Number(r.requests), tokens: Number(r.tokens) })),
      open: open.rows.map((r) => ({ requestId: r.request_id, userId: r.user_id, day: String(r.quota_day), tokens: Number(r.tokens) })),
    };
  }
}

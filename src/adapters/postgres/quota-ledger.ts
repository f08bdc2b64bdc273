/** The durable side of the quota: what users' Redis counters are rebuilt from. */
import type { QuotaLedger, QuotaSnapshot } from "../../domain/ports.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

export class SqlQuotaLedger implements QuotaLedger {
  constructor(private readonly db: SqlClient) {}

  async snapshots(userIds: string[], month: string): Promise<Map<string, QuotaSnapshot>> {
    type DayRow = { user_id: string; quota_day: string; requests: number; tokens: number | string };
    type OpenRow = { request_id: string; user_id: string; quota_day: string; tokens: number };
    const [days, open] = await Promise.all([
      this.db.query<DayRow>(sql("usersLedgerDays"), [userIds, month]),
      this.db.query<OpenRow>(sql("usersOpenReservations"), [userIds]),
    ]);
    const found = new Map<string, QuotaSnapshot>(userIds.map((id) => [id, { settledDays: [], open: [] }]));
    for (const r of days.rows) {
      found.get(r.user_id)?.settledDays.push({ day: String(r.quota_day), requests: Number(r.requests), tokens: Number(r.tokens) });
    }
    for (const r of open.rows) {
      found.get(r.user_id)?.open.push({ requestId: r.request_id, userId: r.user_id, day: String(r.quota_day), tokens: Number(r.tokens) });
    }
    return found;
  }
}

/** The durable side of the quota: what users' Redis counters are rebuilt from. */
import type { QuotaLedger, QuotaSnapshot } from "../../domain/ports.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

export class SqlQuotaLedger implements QuotaLedger {
  constructor(private readonly db: SqlClient) {}

  async snapshots(userIds: string[], month: string): Promise<Map<string, QuotaSnapshot>> {
    type Row = { kind: "settled" | "open"; request_id: string | null; user_id: string; quota_day: string; requests: number; tokens: number | string };
    const rows = (await this.db.query<Row>(sql("usersQuotaSnapshot"), [userIds, month])).rows;
    const found = new Map<string, QuotaSnapshot>(userIds.map((id) => [id, { settledDays: [], open: [] }]));
    for (const r of rows) {
      const snapshot = found.get(r.user_id);
      if (!snapshot) continue;
      if (r.kind === "settled") snapshot.settledDays.push({ day: String(r.quota_day), requests: Number(r.requests), tokens: Number(r.tokens) });
      else snapshot.open.push({ requestId: r.request_id as string, userId: r.user_id, day: String(r.quota_day), tokens: Number(r.tokens) });
    }
    return found;
  }
}

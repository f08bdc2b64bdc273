/**
 * Expiry of requests open for too long, over PostgreSQL or PGlite: claimed under the same lease as
 * the outbox's (claimed_until), so the quota release in between runs with no transaction open.
 */
import type { Lease, StaleRequests } from "../../domain/ports.js";
import { leaseEnd } from "./outbox.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

const TIMEOUT_MESSAGE = "the request did not finish in time; its reservation was released";

type Row = { request_id: string; user_id: string };
const owner = (row: Row) => ({ requestId: row.request_id, userId: row.user_id });

export class SqlStaleRequests implements StaleRequests {
  constructor(private readonly db: SqlClient) {}

  async claim(olderThan: Date, limit: number, lease: Lease): Promise<Array<{ requestId: string; userId: string }>> {
    return (await this.db.query<Row>(sql("claimStale"), [olderThan, limit, leaseEnd(lease), lease.now])).rows.map(owner);
  }

  async expire(requestIds: string[], at: Date): Promise<Array<{ requestId: string; userId: string }>> {
    if (requestIds.length === 0) return [];
    return (await this.db.query<Row>(sql("expireClaimed"), [requestIds, at, TIMEOUT_MESSAGE])).rows.map(owner);
  }

  async releaseClaim(requestIds: string[]): Promise<void> {
    if (requestIds.length > 0) await this.db.query(sql("releaseClaim"), [requestIds]);
  }
}

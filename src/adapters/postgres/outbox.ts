/**
 * The outbox over PostgreSQL or PGlite: unpublished request rows, claimed by the sweeper under a
 * lease (claimed_until) in one statement, so no lock or transaction is held while it publishes.
 */
import type { Lease, Outbox, StoredRequest } from "../../domain/ports.js";
import { sql } from "./queries.js";
import { toStored, type RequestRow } from "./request-store.js";
import type { SqlClient } from "./sql-client.js";

export class SqlOutbox implements Outbox {
  constructor(private readonly db: SqlClient) {}

  async claim(olderThan: Date, limit: number, lease: Lease): Promise<StoredRequest[]> {
    const rows = (await this.db.query<RequestRow>(sql("claimUnpublished"), [olderThan, limit, leaseEnd(lease), lease.now])).rows;
    // UPDATE … RETURNING gives no order; publish the oldest first, as they were admitted.
    return rows.map(toStored).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  async markPublished(requestIds: string[]): Promise<void> {
    if (requestIds.length > 0) await this.db.query(sql("markPublished"), [requestIds]);
  }

  async releaseClaim(requestIds: string[]): Promise<void> {
    if (requestIds.length > 0) await this.db.query(sql("releaseClaim"), [requestIds]);
  }

  async deleteUnpublished(requestId: string): Promise<boolean> {
    return (await this.db.query(sql("deleteUnpublishedRequest"), [requestId])).rowCount > 0;
  }

  async unpublishOpen(): Promise<number> {
    return (await this.db.query(sql("unpublishOpen"))).rowCount;
  }
}

/** When a lease taken now runs out. */
export function leaseEnd(lease: Lease): Date {
  return new Date(lease.now.getTime() + lease.ms);
}

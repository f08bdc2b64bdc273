/** WebhookStore over PostgreSQL or PGlite (see sql-client.ts); every statement is in webhooks.sql. */
import type { ClaimedDelivery, WebhookEndpoint, WebhookStore } from "../../domain/webhooks.js";
import { statementsOf } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

const sql = statementsOf("webhooks.sql");

type Row = Record<string, unknown>;
const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(v as string));
/** pg and PGlite both answer text[] as an array; a literal `{}` string only if a driver does not parse it. */
const textArray = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : typeof v === "string" && v !== "{}" ? v.slice(1, -1).split(",") : []);

function toEndpoint(r: Row): WebhookEndpoint {
  return {
    endpointId: r.endpoint_id as string,
    userId: r.user_id as string,
    url: r.url as string,
    events: textArray(r.events),
    createdAt: date(r.created_at) as Date,
    disabledAt: date(r.disabled_at),
    disabledReason: (r.disabled_reason as string | null) ?? null,
    lastError: (r.last_error as string | null) ?? null,
    lastErrorAt: date(r.last_error_at),
    lastDeliveredAt: date(r.last_delivered_at),
    pending: Number(r.pending ?? 0),
  };
}

export class SqlWebhookStore implements WebhookStore {
  constructor(private readonly db: SqlClient) {}

  async createEndpoint(input: { endpointId: string; userId: string; url: string; events: string[]; secret: string }): Promise<void> {
    await this.db.query(sql("insertWebhookEndpoint"), [input.endpointId, input.userId, input.url, input.events, input.secret]);
  }

  async listEndpoints(userId: string | null): Promise<WebhookEndpoint[]> {
    return (await this.db.query<Row>(sql("listWebhookEndpoints"), [userId])).rows.map(toEndpoint);
  }

  async countEndpoints(userId: string): Promise<number> {
    return Number((await this.db.query<{ n: number }>(sql("countWebhookEndpoints"), [userId])).rows[0]?.n ?? 0);
  }

  async deleteEndpoint(endpointId: string, userId: string | null): Promise<boolean> {
    return (await this.db.query(sql("deleteWebhookEndpoint"), [endpointId, userId])).rows.length > 0;
  }

  async claimDue(now: Date, leaseUntil: Date, limit: number): Promise<ClaimedDelivery[]> {
    const { rows } = await this.db.query<Row>(sql("claimWebhookDeliveries"), [now, leaseUntil, limit]);
    return rows.map((r) => ({
      deliveryId: Number(r.delivery_id),
      endpointId: r.endpoint_id as string,
      eventId: r.event_id as string,
      type: r.event_type as string,
      subjectId: r.subject_id as string,
      createdAt: date(r.created_at) as Date,
      attempts: Number(r.attempts),
      url: r.url as string,
      secret: r.secret as string,
    }));
  }

  async markDelivered(deliveryId: number, at: Date): Promise<void> {
    await this.db.query(sql("markWebhookDelivered"), [deliveryId, at]);
  }

  async reschedule(deliveryId: number, retryAt: Date, error: string, at: Date): Promise<void> {
    await this.db.query(sql("rescheduleWebhookDelivery"), [deliveryId, retryAt, error, at]);
  }

  async giveUp(deliveryId: number, error: string, reason: string, at: Date): Promise<void> {
    await this.db.query(sql("giveUpWebhookDelivery"), [deliveryId, error, reason, at]);
  }

  async countPending(): Promise<number> {
    return Number((await this.db.query<{ n: number }>(sql("countPendingWebhookDeliveries"))).rows[0]?.n ?? 0);
  }
}

/**
 * Signed webhooks, the pure part: which events there are, what an event's body is, how a delivery
 * is signed (Standard Webhooks, as OpenAI signs its own and its SDK's `webhooks.unwrap` checks) and
 * when a failed delivery is tried again. The store and the delivery loop are ports/adapters of this.
 */
import { createHmac, randomBytes } from "node:crypto";

/**
 * Every event type. `response.*`: background /v1/responses requests (OpenAI sends its response
 * events for background responses only); `batch.*`: the Batch API; `inference.*`: native
 * /api/v1/inference requests. Chat and text completions hold the connection until their answer is
 * final, so they have no event (a batch line's outcome is its batch's event).
 */
export const WEBHOOK_EVENT_TYPES = [
  "response.completed",
  "response.failed",
  "response.cancelled",
  "response.incomplete",
  "batch.completed",
  "batch.failed",
  "batch.expired",
  "batch.cancelled",
  "inference.completed",
  "inference.failed",
  "inference.cancelled",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const isWebhookEventType = (value: unknown): value is WebhookEventType => WEBHOOK_EVENT_TYPES.includes(value as WebhookEventType);

export const SECRET_PREFIX = "whsec_";

/** A signing secret: `whsec_` and 32 random bytes in base64, as Standard Webhooks writes them. */
export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString("base64")}`;
}

export const newEndpointId = (): string => `whe_${randomBytes(12).toString("hex")}`;

/**
 * The `webhook-signature` header of a delivery: `v1,` and the base64 HMAC-SHA256 of
 * `id.timestamp.body`, keyed with the base64-decoded part of the secret after `whsec_`.
 */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = secret.startsWith(SECRET_PREFIX) ? Buffer.from(secret.slice(SECRET_PREFIX.length), "base64") : Buffer.from(secret, "utf8");
  const mac = createHmac("sha256", key).update(`${id}.${timestampSeconds}.${body}`, "utf8").digest("base64");
  return `v1,${mac}`;
}

export interface WebhookEvent {
  eventId: string;
  type: string;
  /** The response, batch or request the event is about (`resp_…`, `batch_…`, a request id). */
  subjectId: string;
  createdAt: Date;
}

/**
 * The body sent, in the shape of OpenAI's webhook events. Built from the stored event only, so every
 * retry of an event sends the same bytes under the same `webhook-id`.
 */
export function eventBody(event: WebhookEvent): string {
  return JSON.stringify({
    id: event.eventId,
    type: event.type,
    created_at: Math.floor(event.createdAt.getTime() / 1000),
    object: "event",
    data: { id: event.subjectId },
  });
}

/** The headers of one delivery attempt (the timestamp is the attempt's, the id the event's). */
export function deliveryHeaders(secret: string, event: WebhookEvent, body: string, at: Date): Record<string, string> {
  const timestamp = Math.floor(at.getTime() / 1000);
  return {
    "content-type": "application/json",
    "webhook-id": event.eventId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signWebhook(secret, event.eventId, timestamp, body),
  };
}

export interface RetryPolicy {
  /** The wait after the first failed attempt; it doubles with each one after. */
  baseMs: number;
  /** No wait is longer. */
  maxDelayMs: number;
  /** An event still not delivered this long after it happened is given up (and its endpoint disabled). */
  maxAgeMs: number;
}

export type RetryDecision = { retryAt: Date } | { giveUp: true };

/**
 * After failed attempt number `attempts` (1 = the first) of an event created at `createdAt`:
 * exponential back-off with jitter (each wait drawn between half and all of the doubled base, so
 * receivers coming back are not hit by every sender at once), the last attempt at the max age, then
 * give up. `random` in [0, 1).
 */
export function nextAttempt(policy: RetryPolicy, attempts: number, createdAt: Date, now: Date, random: number): RetryDecision {
  const deadline = createdAt.getTime() + policy.maxAgeMs;
  if (now.getTime() >= deadline) return { giveUp: true };
  const full = Math.min(policy.maxDelayMs, policy.baseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 40));
  const wait = full / 2 + (full / 2) * random;
  return { retryAt: new Date(Math.min(now.getTime() + wait, deadline)) };
}

/** What an endpoint is, as its owner sees it (never its secret). */
export interface WebhookEndpoint {
  endpointId: string;
  userId: string;
  url: string;
  /** Empty: every event type. */
  events: string[];
  createdAt: Date;
  disabledAt: Date | null;
  disabledReason: string | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  lastDeliveredAt: Date | null;
  /** Deliveries not yet made nor given up. */
  pending: number;
}

/** A delivery claimed under a lease: the event, and where and with what to send it. */
export interface ClaimedDelivery extends WebhookEvent {
  deliveryId: number;
  endpointId: string;
  url: string;
  secret: string;
  /** Attempts so far, this one included. */
  attempts: number;
}

export interface WebhookStore {
  createEndpoint(input: { endpointId: string; userId: string; url: string; events: string[]; secret: string }): Promise<void>;
  listEndpoints(userId: string | null): Promise<WebhookEndpoint[]>;
  countEndpoints(userId: string): Promise<number>;
  /** Deletes the endpoint if it is `userId`'s (any user's when null); false when there is none. */
  deleteEndpoint(endpointId: string, userId: string | null): Promise<boolean>;
  claimDue(now: Date, leaseUntil: Date, limit: number): Promise<ClaimedDelivery[]>;
  markDelivered(deliveryId: number, at: Date): Promise<void>;
  reschedule(deliveryId: number, retryAt: Date, error: string, at: Date): Promise<void>;
  /** Gives the delivery up and disables its endpoint, saying why. */
  giveUp(deliveryId: number, error: string, reason: string, at: Date): Promise<void>;
  countPending(): Promise<number>;
}

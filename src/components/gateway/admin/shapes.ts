/** The admin routes' bodies and answers (snake_case, as every other route of the platform). */
import { z } from "zod";
import type { CreatedKey, UserSummary } from "../../../admin-operations.js";
import type { Tier } from "../../../domain/ports.js";

/** POST /api/v1/admin/users (exported for the API reference). */
export const createUserBody = z.strictObject({
  user_id: z.string().min(1).max(128).meta({ pattern: "^[A-Za-z0-9._@-]{1,128}$", description: "Letters, digits and . _ @ -" }),
  tier: z.string().min(1).max(64).optional().meta({ description: "An existing tier (GET /api/v1/admin/tiers); default free." }),
});

export const userAnswer = (u: UserSummary) => ({
  user_id: u.userId,
  tier: u.tier,
  disabled: u.disabled,
  active_keys: u.activeKeys,
  created_at: u.createdAt.toISOString(),
});

export const keyAnswer = (k: CreatedKey) => ({ user_id: k.userId, key_id: k.keyId, api_key: k.apiKey });

export const tierAnswer = (t: Tier) => ({
  name: t.name,
  limits: {
    daily_requests: t.limits.dailyRequests,
    daily_tokens: t.limits.dailyTokens,
    monthly_requests: t.limits.monthlyRequests,
    monthly_tokens: t.limits.monthlyTokens,
  },
});

export interface QueueAnswer {
  queue: string;
  /** Messages waiting in the broker for a worker. */
  ready: number;
  /** Messages a worker holds and has not acknowledged yet (the embedded broker says; RabbitMQ reports 0). */
  unacked: number;
  /** Requests queued or processing in the database (their reservations are open). */
  open_requests: number;
  /** Requests that reached a final status within the last window_seconds. */
  finished_recently: number;
  window_seconds: number;
  /** finished_recently / window_seconds. */
  throughput_per_second: number;
}

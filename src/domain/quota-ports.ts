/**
 * The quota ports: counters that admit a request only within its user's limits (QuotaStore), and
 * the durable record they are rebuilt from (QuotaLedger). Part of the domain's interfaces (ports.ts
 * re-exports them); the domain imports no I/O library.
 */
import type { QuotaReplayEntry } from "./ports.js";

// ---------------------------------------------------------------- quota

export type QuotaLimitName = "daily_requests" | "daily_tokens" | "monthly_requests" | "monthly_tokens";

/** Limits of one user, from their tier. A limit of null means unlimited. */
export interface QuotaLimits {
  dailyRequests: number | null;
  dailyTokens: number | null;
  monthlyRequests: number | null;
  monthlyTokens: number | null;
}

/** Calendar windows in UTC: day "2026-11-25", month "2026-11". */
export interface QuotaWindow {
  day: string;
  month: string;
}

export interface ReserveInput {
  userId: string;
  requestId: string;
  /** Estimated tokens (prompt + requested completion) held until settle or release. */
  tokens: number;
  limits: QuotaLimits;
  now: Date;
}

/** A window's counts: requests, and tokens used + reserved. */
export interface QuotaCounts {
  dailyRequests: number;
  dailyTokens: number;
  monthlyRequests: number;
  monthlyTokens: number;
}

export type ReserveResult =
  /** `counts`: the windows with this reservation in them (absent for a duplicate). */
  | { ok: true; window: QuotaWindow; duplicate: boolean; counts?: QuotaCounts }
  | {
      ok: false;
      limit: QuotaLimitName;
      limitValue: number;
      /** used (+ reserved for tokens) in that window before this request. */
      current: number;
      /** Seconds until that window resets. */
      retryAfterSeconds: number;
    };

export type SettleResult = "settled" | "already_settled" | "already_released" | "unknown_reservation";
export type ReleaseResult = "released" | "already_settled" | "already_released" | "unknown_reservation";

export interface WindowUsage {
  requests: number;
  tokensUsed: number;
  tokensReserved: number;
}

export interface QuotaUsage {
  window: QuotaWindow;
  daily: WindowUsage;
  monthly: WindowUsage;
  dailyResetAt: Date;
  monthlyResetAt: Date;
}

export interface QuotaStore {
  /**
   * Atomically: check every limit; only if all hold, count the request and reserve `tokens`,
   * recording the reservation under requestId (with the windows it was made in).
   * Reserving the same requestId twice counts once (`duplicate: true`).
   */
  reserve(input: ReserveInput): Promise<ReserveResult>;
  /**
   * Replace the reservation by the real count, exactly once, in the windows it was reserved in.
   * `window`, when the caller knows it (the stored request has it), spares looking it up; a wrong
   * one changes nothing (the store then finds the right one itself).
   */
  settle(input: { userId: string; requestId: string; actualTokens: number; window?: QuotaWindow }): Promise<SettleResult>;
  /** Give the reservation (tokens and the request count) back; exactly once. `window` as for settle. */
  release(input: { userId: string; requestId: string; window?: QuotaWindow }): Promise<ReleaseResult>;
  usage(userId: string, now: Date): Promise<QuotaUsage>;
  /** Liveness check used by /health and start-up. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** One user's quota as the durable record has it: settled usage of a month by day, and open reservations. */
export interface QuotaSnapshot {
  settledDays: Array<{ day: string; requests: number; tokens: number }>;
  open: QuotaReplayEntry[];
}

/**
 * The durable record a quota store is rebuilt from when its own state was lost (Redis restarted
 * empty or replaced): the ledger and the open requests in PostgreSQL.
 */
export interface QuotaLedger {
  /** Every user asked for is in the answer (with empty lists when the record has nothing of theirs). */
  snapshots(userIds: string[], month: string): Promise<Map<string, QuotaSnapshot>>;
}

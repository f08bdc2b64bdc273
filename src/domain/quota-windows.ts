/**
 * Pure quota window logic: calendar windows in UTC, their reset times, how long the stores keep
 * their records, and which limit a reservation breaks first. No I/O, no clock: every function takes
 * the instant it reasons about. The Redis Lua script `reserve.lua` mirrors `firstFailingLimit`
 * (same order, same comparisons); the contract suite holds the two to the same answers.
 */
import type { QuotaLimitName, QuotaLimits, QuotaWindow, WindowUsage } from "./ports.js";

const DAY_MS = 86_400_000;

/** Day counters are kept this long after their day ends (late settles still land in them). */
export const DAY_RETENTION_MS = 2 * DAY_MS;
/** Month counters are kept this long after their month ends. */
export const MONTH_RETENTION_MS = 40 * DAY_MS;
/** Reservation records are kept this long after the day they were made in ends. */
export const RESERVATION_RETENTION_MS = 40 * DAY_MS;

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH_RE = /^(\d{4})-(\d{2})$/;

function assertValidDate(date: Date): void {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new RangeError("invalid date");
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** UTC calendar day of an instant: "2026-11-25". */
export function utcDay(date: Date): string {
  assertValidDate(date);
  return `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}`;
}

/** UTC calendar month of an instant: "2026-11". */
export function utcMonth(date: Date): string {
  assertValidDate(date);
  return `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}`;
}

export function quotaWindow(date: Date): QuotaWindow {
  return { day: utcDay(date), month: utcMonth(date) };
}

/** Start (00:00:00.000 UTC) of the day after the given day string. */
export function dayEnd(day: string): Date {
  const m = DAY_RE.exec(day);
  if (!m) throw new RangeError(`invalid day "${day}"`);
  const start = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (utcDay(new Date(start)) !== day) throw new RangeError(`invalid day "${day}"`);
  return new Date(start + DAY_MS);
}

/** Start (the 1st, 00:00 UTC) of the month after the given month string. */
export function monthEnd(month: string): Date {
  const m = MONTH_RE.exec(month);
  const mm = m ? Number(m[2]) : 0;
  if (!m || mm < 1 || mm > 12) throw new RangeError(`invalid month "${month}"`);
  return new Date(Date.UTC(Number(m[1]), mm, 1)); // Date.UTC rolls month 12 over into January
}

/** When the daily window containing `now` resets: the next UTC midnight. */
export function dailyResetAt(now: Date): Date {
  return dayEnd(utcDay(now));
}

/** When the monthly window containing `now` resets: the 1st of the next month, 00:00 UTC. */
export function monthlyResetAt(now: Date): Date {
  return monthEnd(utcMonth(now));
}

/** Whole seconds from `now` until `at`, rounded up, at least 1 (a Retry-After of 0 invites a hot loop). */
export function secondsUntil(at: Date, now: Date): number {
  return Math.max(1, Math.ceil((at.getTime() - now.getTime()) / 1000));
}

export function isDailyLimit(limit: QuotaLimitName): boolean {
  return limit === "daily_requests" || limit === "daily_tokens";
}

/** Seconds until the window of `limit` (the one containing `now`) resets. */
export function retryAfterSeconds(limit: QuotaLimitName, now: Date): number {
  return secondsUntil(isDailyLimit(limit) ? dailyResetAt(now) : monthlyResetAt(now), now);
}

/** Unix seconds at which a day's counters may be dropped. */
export function dayKeyExpireAt(day: string): number {
  return Math.floor((dayEnd(day).getTime() + DAY_RETENTION_MS) / 1000);
}

/** Unix seconds at which a month's counters may be dropped. */
export function monthKeyExpireAt(month: string): number {
  return Math.floor((monthEnd(month).getTime() + MONTH_RETENTION_MS) / 1000);
}

/** Unix seconds at which a reservation record made in `window` may be dropped. */
export function reservationExpireAt(window: QuotaWindow): number {
  return Math.floor((dayEnd(window.day).getTime() + RESERVATION_RETENTION_MS) / 1000);
}

/**
 * The order limits are checked in; the first that fails is reported. Monthly before daily: when
 * both fail, the monthly Retry-After is the one worth waiting for (retrying at the daily reset
 * would fail again). Within a window, requests before tokens.
 * `reserve.lua` checks in this same order.
 */
export const LIMIT_CHECK_ORDER: readonly QuotaLimitName[] = [
  "monthly_requests",
  "monthly_tokens",
  "daily_requests",
  "daily_tokens",
];

export interface LimitFailure {
  limit: QuotaLimitName;
  limitValue: number;
  /** requests so far (request limits) or used + reserved (token limits), before this request. */
  current: number;
}

export function limitValueOf(limits: QuotaLimits, name: QuotaLimitName): number | null {
  switch (name) {
    case "daily_requests":
      return limits.dailyRequests;
    case "daily_tokens":
      return limits.dailyTokens;
    case "monthly_requests":
      return limits.monthlyRequests;
    case "monthly_tokens":
      return limits.monthlyTokens;
  }
}

/**
 * Which limit, if any, a new request reserving `tokens` would break, given the counters of its day
 * and month. Request limits: requests + 1 > limit. Token limits: used + reserved + tokens > limit.
 * A null limit is unlimited. Returns null when every limit holds.
 */
export function firstFailingLimit(
  counters: { daily: WindowUsage; monthly: WindowUsage },
  limits: QuotaLimits,
  tokens: number,
): LimitFailure | null {
  for (const limit of LIMIT_CHECK_ORDER) {
    const limitValue = limitValueOf(limits, limit);
    if (limitValue === null) continue;
    const usage = isDailyLimit(limit) ? counters.daily : counters.monthly;
    const isRequests = limit === "daily_requests" || limit === "monthly_requests";
    const current = isRequests ? usage.requests : usage.tokensUsed + usage.tokensReserved;
    const next = current + (isRequests ? 1 : tokens);
    if (next > limitValue) return { limit, limitValue, current };
  }
  return null;
}

/** Non-negative safe integer check shared by both stores' input validation. */
export function assertCount(name: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${String(value)}`);
  }
}

/** Validates a limits object: each limit null or a non-negative integer. */
export function assertLimits(limits: QuotaLimits): void {
  for (const [name, value] of Object.entries(limits)) if (value !== null) assertCount(`limits.${name}`, value);
}

/**
 * Ids become parts of store keys. The user id sits inside a Redis Cluster hash tag `{userId}`, so
 * it must not contain braces (that would also make keys of two users ambiguous).
 */
export function assertQuotaIds(userId: string, requestId?: string): void {
  if (typeof userId !== "string" || userId.length === 0 || userId.length > 256 || /[{}]/.test(userId)) {
    throw new RangeError("userId must be 1..256 characters without '{' or '}'");
  }
  if (requestId !== undefined && (typeof requestId !== "string" || requestId.length === 0 || requestId.length > 256)) {
    throw new RangeError("requestId must be 1..256 characters");
  }
}

/**
 * OpenAI's rate-limit headers, from the user's quota: `x-ratelimit-{limit,remaining,reset}-
 * {requests,tokens}`. The window reported is the tightest one that has a limit (the day, else the
 * month); a user without limits gets none of the headers. Pure.
 */
import type { QuotaCounts, QuotaLimits, QuotaUsage } from "../../domain/ports.js";
import { dailyResetAt, monthlyResetAt } from "../../domain/quota-windows.js";

/** OpenAI's duration format: "20ms", "1s", "6m0s", "2h3m4s". */
export function formatResetDuration(ms: number): string {
  const clamped = Math.max(0, Math.ceil(ms));
  if (clamped < 1000) return `${clamped}ms`;
  const total = Math.ceil(clamped / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

export function rateLimitHeaders(limits: QuotaLimits, usage: QuotaUsage, now: Date): Record<string, string> {
  const counts: QuotaCounts = {
    dailyRequests: usage.daily.requests,
    dailyTokens: usage.daily.tokensUsed + usage.daily.tokensReserved,
    monthlyRequests: usage.monthly.requests,
    monthlyTokens: usage.monthly.tokensUsed + usage.monthly.tokensReserved,
  };
  return rateLimitHeadersOf(limits, counts, now, { daily: usage.dailyResetAt, monthly: usage.monthlyResetAt });
}

type Window = "daily" | "monthly";

/** The limit a header family reports and its window: the day's when it has one, else the month's. */
function reported(daily: number | null, monthly: number | null): { limit: number; window: Window } | null {
  if (daily !== null) return { limit: daily, window: "daily" };
  return monthly !== null ? { limit: monthly, window: "monthly" } : null;
}

/**
 * The same from counts (say, the ones a reservation answers with), resetting at the windows' ends.
 * Only the windows reported are looked at, so a user without limits costs no date arithmetic.
 */
export function rateLimitHeadersOf(limits: QuotaLimits, counts: QuotaCounts, now: Date, resets?: { daily: Date; monthly: Date }): Record<string, string> {
  const headers: Record<string, string> = {};
  const requests = reported(limits.dailyRequests, limits.monthlyRequests);
  const tokens = reported(limits.dailyTokens, limits.monthlyTokens);
  if (!requests && !tokens) return headers;
  let daily = resets?.daily;
  let monthly = resets?.monthly;
  const resetAt = (window: Window) => (window === "daily" ? (daily ??= dailyResetAt(now)) : (monthly ??= monthlyResetAt(now)));
  if (requests) {
    const used = requests.window === "daily" ? counts.dailyRequests : counts.monthlyRequests;
    headers["x-ratelimit-limit-requests"] = String(requests.limit);
    headers["x-ratelimit-remaining-requests"] = String(Math.max(0, requests.limit - used));
    headers["x-ratelimit-reset-requests"] = formatResetDuration(resetAt(requests.window).getTime() - now.getTime());
  }
  if (tokens) {
    const used = tokens.window === "daily" ? counts.dailyTokens : counts.monthlyTokens;
    headers["x-ratelimit-limit-tokens"] = String(tokens.limit);
    headers["x-ratelimit-remaining-tokens"] = String(Math.max(0, tokens.limit - used));
    headers["x-ratelimit-reset-tokens"] = formatResetDuration(resetAt(tokens.window).getTime() - now.getTime());
  }
  return headers;
}

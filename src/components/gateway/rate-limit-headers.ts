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

/** The same from counts (say, the ones a reservation answers with), resetting at the windows' ends. */
export function rateLimitHeadersOf(
  limits: QuotaLimits,
  counts: QuotaCounts,
  now: Date,
  resets = { daily: dailyResetAt(now), monthly: monthlyResetAt(now) },
): Record<string, string> {
  const headers: Record<string, string> = {};
  const daily = { reset: resets.daily.getTime() - now.getTime(), requests: counts.dailyRequests, tokens: counts.dailyTokens };
  const monthly = { reset: resets.monthly.getTime() - now.getTime(), requests: counts.monthlyRequests, tokens: counts.monthlyTokens };
  const requests = limits.dailyRequests !== null ? { limit: limits.dailyRequests, ...daily } : limits.monthlyRequests !== null ? { limit: limits.monthlyRequests, ...monthly } : null;
  const tokens = limits.dailyTokens !== null ? { limit: limits.dailyTokens, ...daily } : limits.monthlyTokens !== null ? { limit: limits.monthlyTokens, ...monthly } : null;
  if (requests) {
    headers["x-ratelimit-limit-requests"] = String(requests.limit);
    headers["x-ratelimit-remaining-requests"] = String(Math.max(0, requests.limit - requests.requests));
    headers["x-ratelimit-reset-requests"] = formatResetDuration(requests.reset);
  }
  if (tokens) {
    headers["x-ratelimit-limit-tokens"] = String(tokens.limit);
    headers["x-ratelimit-remaining-tokens"] = String(Math.max(0, tokens.limit - tokens.tokens));
    headers["x-ratelimit-reset-tokens"] = formatResetDuration(tokens.reset);
  }
  return headers;
}

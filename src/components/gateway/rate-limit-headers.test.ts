import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatResetDuration, rateLimitHeaders, rateLimitHeadersOf } from "./rate-limit-headers.js";

describe("rate-limit headers", () => {
  it("formats durations as OpenAI does", () => {
    assert.equal(formatResetDuration(20), "20ms");
    assert.equal(formatResetDuration(1000), "1s");
    assert.equal(formatResetDuration(360_000), "6m0s");
    assert.equal(formatResetDuration(7_384_000), "2h3m4s");
    assert.equal(formatResetDuration(-5), "0ms");
  });

  it("reports the day's limits, remaining after used and reserved tokens, and when they reset", () => {
    const now = new Date("2026-12-02T23:54:00Z");
    const usage = {
      window: { day: "2026-12-02", month: "2026-12" },
      daily: { requests: 7, tokensUsed: 300, tokensReserved: 200 },
      monthly: { requests: 70, tokensUsed: 3000, tokensReserved: 200 },
      dailyResetAt: new Date("2026-12-03T00:00:00Z"),
      monthlyResetAt: new Date("2027-01-01T00:00:00Z"),
    };
    const headers = rateLimitHeaders({ dailyRequests: 10, dailyTokens: 1000, monthlyRequests: null, monthlyTokens: null }, usage, now);
    assert.deepEqual(headers, {
      "x-ratelimit-limit-requests": "10",
      "x-ratelimit-remaining-requests": "3",
      "x-ratelimit-reset-requests": "6m0s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "500",
      "x-ratelimit-reset-tokens": "6m0s",
    });
    const monthly = rateLimitHeaders({ dailyRequests: null, dailyTokens: null, monthlyRequests: 100, monthlyTokens: null }, usage, now);
    assert.equal(monthly["x-ratelimit-remaining-requests"], "30");
    assert.equal(monthly["x-ratelimit-limit-tokens"], undefined);
    assert.deepEqual(rateLimitHeaders({ dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null }, usage, now), {});
  });

  it("from a reservation's counts: each family from its own window, resetting at that window's end", () => {
    const now = new Date("2026-12-31T23:54:00Z");
    const counts = { dailyRequests: 4, dailyTokens: 40, monthlyRequests: 90, monthlyTokens: 900 };
    assert.deepEqual(rateLimitHeadersOf({ dailyRequests: 10, dailyTokens: null, monthlyRequests: 100, monthlyTokens: 1000 }, counts, now), {
      "x-ratelimit-limit-requests": "10",
      "x-ratelimit-remaining-requests": "6",
      "x-ratelimit-reset-requests": "6m0s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "100",
      "x-ratelimit-reset-tokens": "6m0s",
    });
    const midMonth = new Date("2026-12-15T00:00:00Z");
    assert.equal(rateLimitHeadersOf({ dailyRequests: null, dailyTokens: null, monthlyRequests: 100, monthlyTokens: null }, counts, midMonth)["x-ratelimit-reset-requests"], "408h0m0s");
  });

  it("a user without limits: no headers, and no window is computed (an invalid clock would throw there)", () => {
    const none = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
    assert.deepEqual(rateLimitHeadersOf(none, { dailyRequests: 1, dailyTokens: 1, monthlyRequests: 1, monthlyTokens: 1 }, new Date(Number.NaN)), {});
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  LIMIT_CHECK_ORDER,
  assertCount,
  assertQuotaIds,
  dailyResetAt,
  dayEnd,
  dayKeyExpireAt,
  firstFailingLimit,
  monthEnd,
  monthKeyExpireAt,
  monthlyResetAt,
  quotaWindow,
  reservationExpireAt,
  retryAfterSeconds,
  secondsUntil,
  utcDay,
  utcMonth,
} from "./quota-windows.js";
import type { QuotaLimits, WindowUsage } from "./ports.js";

const d = (iso: string) => new Date(iso);
const unlimited: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const usage = (requests: number, tokensUsed: number, tokensReserved: number): WindowUsage => ({
  requests,
  tokensUsed,
  tokensReserved,
});

describe("quota windows: calendar UTC day and month", () => {
  it("formats the UTC day and month, not the local ones", () => {
    assert.equal(utcDay(d("2026-11-25T23:59:59.999Z")), "2026-11-25");
    assert.equal(utcDay(d("2026-11-26T00:00:00.000Z")), "2026-11-26");
    assert.equal(utcDay(d("2026-11-25T23:30:00-05:00")), "2026-11-26");
    assert.equal(utcMonth(d("2026-01-31T23:59:59Z")), "2026-01");
    assert.equal(utcMonth(d("2026-02-01T00:00:00Z")), "2026-02");
    assert.deepEqual(quotaWindow(d("0999-03-04T05:06:07Z")), { day: "0999-03-04", month: "0999-03" });
  });

  it("resets at the next UTC midnight and the first of the next month", () => {
    assert.equal(dailyResetAt(d("2026-11-25T10:00:00Z")).toISOString(), "2026-11-26T00:00:00.000Z");
    assert.equal(dailyResetAt(d("2026-11-25T00:00:00Z")).toISOString(), "2026-11-26T00:00:00.000Z");
    assert.equal(dailyResetAt(d("2028-02-28T12:00:00Z")).toISOString(), "2028-02-29T00:00:00.000Z");
    assert.equal(dailyResetAt(d("2026-12-31T23:59:59Z")).toISOString(), "2027-01-01T00:00:00.000Z");
    assert.equal(monthlyResetAt(d("2026-11-25T10:00:00Z")).toISOString(), "2026-12-01T00:00:00.000Z");
    assert.equal(monthlyResetAt(d("2026-12-01T00:00:00Z")).toISOString(), "2027-01-01T00:00:00.000Z");
    assert.equal(dayEnd("2026-02-28").toISOString(), "2026-03-01T00:00:00.000Z");
    assert.equal(monthEnd("2026-12").toISOString(), "2027-01-01T00:00:00.000Z");
  });

  it("rejects malformed window strings and invalid dates", () => {
    assert.throws(() => dayEnd("2026-02-30"), RangeError);
    assert.throws(() => dayEnd("2026-2-3"), RangeError);
    assert.throws(() => monthEnd("2026-13"), RangeError);
    assert.throws(() => monthEnd("2026-00"), RangeError);
    assert.throws(() => utcDay(new Date("nope")), RangeError);
  });

  it("counts whole seconds until a reset, rounded up, at least 1", () => {
    assert.equal(secondsUntil(d("2026-11-26T00:00:00Z"), d("2026-11-25T18:00:00Z")), 21_600);
    assert.equal(secondsUntil(d("2026-11-26T00:00:00Z"), d("2026-11-25T23:59:59.500Z")), 1);
    assert.equal(secondsUntil(d("2026-11-26T00:00:00Z"), d("2026-11-26T00:00:00Z")), 1);
    assert.equal(retryAfterSeconds("daily_tokens", d("2026-11-25T00:00:00Z")), 86_400);
    assert.equal(retryAfterSeconds("monthly_requests", d("2026-11-30T23:00:00Z")), 3_600);
    assert.equal(retryAfterSeconds("monthly_tokens", d("2026-11-01T00:00:00Z")), 30 * 86_400);
  });

  it("expires records at instants computed from the window", () => {
    assert.equal(dayKeyExpireAt("2026-11-25"), Date.parse("2026-11-28T00:00:00Z") / 1000);
    assert.equal(monthKeyExpireAt("2026-11"), Date.parse("2027-01-10T00:00:00Z") / 1000);
    assert.equal(
      reservationExpireAt({ day: "2026-11-25", month: "2026-11" }),
      Date.parse("2027-01-05T00:00:00Z") / 1000,
    );
  });

  it("window and reset agree for any instant: start of window <= now < reset", () => {
    fc.assert(
      fc.property(fc.date({ min: d("1970-01-01T00:00:00Z"), max: d("2999-12-31T23:59:59Z"), noInvalidDate: true }), (now) => {
        const day = dailyResetAt(now).getTime();
        const month = monthlyResetAt(now).getTime();
        assert.ok(now.getTime() < day && day - now.getTime() <= 86_400_000);
        assert.ok(day <= month);
        assert.equal(utcDay(new Date(day - 1)), utcDay(now));
        assert.equal(utcMonth(new Date(month - 1)), utcMonth(now));
        assert.notEqual(utcMonth(new Date(month)), utcMonth(now));
      }),
    );
  });
});

describe("quota windows: first failing limit", () => {
  const none = { daily: usage(0, 0, 0), monthly: usage(0, 0, 0) };

  it("admits when every limit is null (unlimited)", () => {
    assert.equal(firstFailingLimit({ daily: usage(1e9, 1e9, 1e9), monthly: usage(1e9, 1e9, 1e9) }, unlimited, 1e6), null);
  });

  it("checks requests + 1 against request limits", () => {
    const limits = { ...unlimited, dailyRequests: 3 };
    assert.equal(firstFailingLimit({ ...none, daily: usage(2, 0, 0) }, limits, 0), null);
    assert.deepEqual(firstFailingLimit({ ...none, daily: usage(3, 0, 0) }, limits, 0), {
      limit: "daily_requests",
      limitValue: 3,
      current: 3,
    });
  });

  it("checks used + reserved + tokens against token limits", () => {
    const limits = { ...unlimited, dailyTokens: 1000 };
    assert.equal(firstFailingLimit({ ...none, daily: usage(0, 600, 300) }, limits, 100), null);
    assert.deepEqual(firstFailingLimit({ ...none, daily: usage(0, 600, 300) }, limits, 101), {
      limit: "daily_tokens",
      limitValue: 1000,
      current: 900,
    });
  });

  it("a limit of 0 admits nothing that adds to it", () => {
    assert.equal(firstFailingLimit(none, { ...unlimited, monthlyTokens: 0 }, 0), null);
    assert.equal(firstFailingLimit(none, { ...unlimited, monthlyTokens: 0 }, 1)?.limit, "monthly_tokens");
    assert.equal(firstFailingLimit(none, { ...unlimited, monthlyRequests: 0 }, 0)?.limit, "monthly_requests");
  });

  it("reports monthly before daily and requests before tokens", () => {
    assert.deepEqual(LIMIT_CHECK_ORDER, ["monthly_requests", "monthly_tokens", "daily_requests", "daily_tokens"]);
    const full = { daily: usage(5, 50, 50), monthly: usage(5, 50, 50) };
    const all = { dailyRequests: 5, dailyTokens: 100, monthlyRequests: 5, monthlyTokens: 100 };
    assert.equal(firstFailingLimit(full, all, 1)?.limit, "monthly_requests");
    assert.equal(firstFailingLimit(full, { ...all, monthlyRequests: null }, 1)?.limit, "monthly_tokens");
    assert.equal(firstFailingLimit(full, { ...all, monthlyRequests: null, monthlyTokens: null }, 1)?.limit, "daily_requests");
    assert.equal(firstFailingLimit(full, { ...unlimited, dailyTokens: 100 }, 1)?.limit, "daily_tokens");
  });
});

describe("quota input validation", () => {
  it("accepts non-negative safe integers only", () => {
    assertCount("x", 0);
    assertCount("x", Number.MAX_SAFE_INTEGER);
    for (const bad of [-1, 1.5, Number.NaN, Infinity, "3", null]) assert.throws(() => assertCount("x", bad), RangeError);
  });

  it("keeps braces out of user ids (they would break the hash tag)", () => {
    assertQuotaIds("user-1", "0b4c7b1e-8f6a-4e1f-9a57-1f2e3d4c5b6a");
    assert.throws(() => assertQuotaIds("a}b"), RangeError);
    assert.throws(() => assertQuotaIds("{a"), RangeError);
    assert.throws(() => assertQuotaIds(""), RangeError);
    assert.throws(() => assertQuotaIds("u", ""), RangeError);
  });
});

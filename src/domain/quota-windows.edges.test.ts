/** Edges of the quota window logic: boundaries, every limit name, and the validation messages. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  DAY_RETENTION_MS,
  MONTH_RETENTION_MS,
  RESERVATION_RETENTION_MS,
  assertCount,
  assertLimits,
  assertQuotaIds,
  dayEnd,
  firstFailingLimit,
  isDailyLimit,
  limitValueOf,
  monthEnd,
  secondsUntil,
  utcDay,
  utcMonth,
} from "./quota-windows.js";
import type { QuotaLimits, WindowUsage } from "./ports.js";

const unlimited: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const usage = (requests: number, tokensUsed: number, tokensReserved: number): WindowUsage => ({ requests, tokensUsed, tokensReserved });
const DAY_MS = 86_400_000;

describe("quota windows: edges", () => {
  it("keeps day counters 2 days, month counters and reservations 40 days past their window", () => {
    assert.equal(DAY_RETENTION_MS, 2 * DAY_MS);
    assert.equal(MONTH_RETENTION_MS, 40 * DAY_MS);
    assert.equal(RESERVATION_RETENTION_MS, 40 * DAY_MS);
  });

  it("pads years, months and days", () => {
    const early = new Date("0045-01-02T00:00:00Z");
    assert.equal(utcDay(early), "0045-01-02");
    assert.equal(utcMonth(early), "0045-01");
    assert.equal(utcDay(new Date("2026-10-09T00:00:00Z")), "2026-10-09");
  });

  it("rejects what is not a valid date or window string, saying what", () => {
    assert.throws(() => utcDay(new Date(Number.NaN)), { name: "RangeError", message: "invalid date" });
    assert.throws(() => utcMonth(new Date(Number.NaN)), { name: "RangeError", message: "invalid date" });
    assert.throws(() => utcDay("2026-01-01" as unknown as Date), RangeError);
    for (const bad of ["x2026-02-03", "2026-02-03x", "2026-02-3", "20260-02-03", "2026-13-01", "2026-00-10"]) {
      assert.throws(() => dayEnd(bad), { name: "RangeError", message: `invalid day "${bad}"` }, bad);
    }
    for (const bad of ["x2026-01", "2026-01x", "2026-1", "2026-13", "2026-00", "2026"]) {
      assert.throws(() => monthEnd(bad), { name: "RangeError", message: `invalid month "${bad}"` }, bad);
    }
    assert.equal(monthEnd("2026-01").toISOString(), "2026-02-01T00:00:00.000Z");
    assert.equal(monthEnd("2026-11").toISOString(), "2026-12-01T00:00:00.000Z");
  });

  it("counts at least one second even for a reset already past", () => {
    assert.equal(secondsUntil(new Date("2026-01-01T00:00:00Z"), new Date("2026-01-02T00:00:00Z")), 1);
    assert.equal(secondsUntil(new Date("2026-01-01T00:00:02.001Z"), new Date("2026-01-01T00:00:00Z")), 3);
  });

  it("names which limits are daily", () => {
    assert.equal(isDailyLimit("daily_requests"), true);
    assert.equal(isDailyLimit("daily_tokens"), true);
    assert.equal(isDailyLimit("monthly_requests"), false);
    assert.equal(isDailyLimit("monthly_tokens"), false);
  });

  it("reads each limit by its name", () => {
    const limits = { dailyRequests: 1, dailyTokens: 2, monthlyRequests: 3, monthlyTokens: 4 };
    assert.equal(limitValueOf(limits, "daily_requests"), 1);
    assert.equal(limitValueOf(limits, "daily_tokens"), 2);
    assert.equal(limitValueOf(limits, "monthly_requests"), 3);
    assert.equal(limitValueOf(limits, "monthly_tokens"), 4);
  });

  it("admits exactly up to a limit, on each window's own counters", () => {
    const none = { daily: usage(0, 0, 0), monthly: usage(0, 0, 0) };
    assert.equal(firstFailingLimit({ ...none, monthly: usage(0, 60, 39) }, { ...unlimited, monthlyTokens: 100 }, 1), null);
    assert.deepEqual(firstFailingLimit({ ...none, monthly: usage(0, 60, 40) }, { ...unlimited, monthlyTokens: 100 }, 1), {
      limit: "monthly_tokens",
      limitValue: 100,
      current: 100,
    });
    assert.equal(firstFailingLimit({ ...none, monthly: usage(4, 0, 0) }, { ...unlimited, monthlyRequests: 5 }, 0), null);
    assert.deepEqual(firstFailingLimit({ ...none, monthly: usage(5, 0, 0) }, { ...unlimited, monthlyRequests: 5 }, 0), {
      limit: "monthly_requests",
      limitValue: 5,
      current: 5,
    });
    // The daily counters do not count against monthly limits, nor the other way round.
    assert.equal(firstFailingLimit({ daily: usage(9, 900, 0), monthly: usage(0, 0, 0) }, { ...unlimited, monthlyRequests: 1, monthlyTokens: 10 }, 10), null);
    assert.equal(firstFailingLimit({ daily: usage(0, 0, 0), monthly: usage(9, 900, 0) }, { ...unlimited, dailyRequests: 1, dailyTokens: 10 }, 10), null);
    // Request limits count requests, not tokens; token limits count tokens, not requests.
    assert.equal(firstFailingLimit({ ...none, daily: usage(0, 500, 500) }, { ...unlimited, dailyRequests: 1 }, 500), null);
    assert.equal(firstFailingLimit({ ...none, daily: usage(50, 0, 0) }, { ...unlimited, dailyTokens: 10 }, 10), null);
    // A later limit is still checked after earlier ones hold.
    assert.equal(firstFailingLimit(none, { dailyRequests: 5, dailyTokens: 5, monthlyRequests: 5, monthlyTokens: 5 }, 6)?.limit, "monthly_tokens");
    assert.equal(firstFailingLimit({ ...none, daily: usage(0, 5, 0) }, { dailyRequests: 5, dailyTokens: 5, monthlyRequests: 5, monthlyTokens: 10 }, 1)?.limit, "daily_tokens");
  });

  it("validates counts, limits and ids with messages that name the field", () => {
    assert.throws(() => assertCount("tokens", -1), { name: "RangeError", message: "tokens must be a non-negative integer, got -1" });
    assertLimits(unlimited);
    assertLimits({ dailyRequests: 0, dailyTokens: 5, monthlyRequests: null, monthlyTokens: 7 });
    assert.throws(() => assertLimits({ ...unlimited, monthlyTokens: -2 }), {
      name: "RangeError",
      message: "limits.monthlyTokens must be a non-negative integer, got -2",
    });
    assert.throws(() => assertLimits({ ...unlimited, dailyRequests: 1.5 }), RangeError);
    assertQuotaIds("u".repeat(256), "r".repeat(256));
    assertQuotaIds("u");
    assert.throws(() => assertQuotaIds("u".repeat(257)), { name: "RangeError", message: "userId must be 1..256 characters without '{' or '}'" });
    assert.throws(() => assertQuotaIds(7 as unknown as string), RangeError);
    assert.throws(() => assertQuotaIds("u", "r".repeat(257)), { name: "RangeError", message: "requestId must be 1..256 characters" });
    assert.throws(() => assertQuotaIds("u", 7 as unknown as string), RangeError);
  });
});

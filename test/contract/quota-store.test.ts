/**
 * One contract for every QuotaStore: the Redis store (real Redis at TEST_URLS.redis, unique key
 * prefix per run) and the in-process memory store. Then a property: for random sequences of
 * reserve/settle/release both stores answer identically, match a ledger model, and never let a
 * limit be exceeded. No timing is measured or asserted anywhere in this file.
 *
 * Instants are in the future (2031+): Redis EXPIREAT with a past instant deletes a key at once,
 * exactly like real windows long gone.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Redis } from "ioredis";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import type { QuotaLimits, QuotaStore, QuotaUsage, ReserveResult } from "../../src/domain/ports.js";
import {
  LIMIT_CHECK_ORDER,
  dayKeyExpireAt,
  firstFailingLimit,
  limitValueOf,
  monthKeyExpireAt,
  quotaWindow,
  reservationExpireAt,
  retryAfterSeconds,
} from "../../src/domain/quota-windows.js";
import type { QuotaLimitName } from "../../src/domain/ports.js";
import { TEST_URLS, requireServices, uniqueName } from "../support/services.js";

const redisSkip = await requireServices("redis");
const keyPrefix = `${uniqueName("test_quota")}:`;
let redisClient: Redis | undefined;

function redis(): Redis {
  redisClient ??= new Redis(TEST_URLS.redis, { maxRetriesPerRequest: 2 });
  return redisClient;
}

after(async () => {
  if (!redisClient) return;
  let cursor = "0";
  do {
    const [next, keys] = await redisClient.scan(cursor, "MATCH", `${keyPrefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redisClient.del(...keys);
  } while (cursor !== "0");
  await redisClient.quit();
});

const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const at = (iso: string) => new Date(iso);
const NOW = at("2031-03-10T18:00:00Z"); // 6 h to the daily reset, 21 d 6 h to the monthly one
const user = () => uniqueName("user");
const req = () => uniqueName("req");
const zero = { requests: 0, tokensUsed: 0, tokensReserved: 0 };

interface Subject {
  name: string;
  skip: string | undefined;
  make: () => QuotaStore;
}

const subjects: Subject[] = [
  { name: "memory", skip: undefined, make: () => new MemoryQuotaStore() },
  { name: "redis", skip: redisSkip, make: () => new RedisQuotaStore({ redis: redis(), keyPrefix }) },
];

for (const subject of subjects) {
  describe(`QuotaStore contract: ${subject.name}`, { skip: subject.skip }, () => {
    let store: QuotaStore;
    before(async () => {
      store = subject.make();
      await store.ping();
    });
    after(async () => {
      await store.close();
    });

    const reserve = (userId: string, requestId: string, tokens: number, limits: Partial<QuotaLimits> = {}, now = NOW) =>
      store.reserve({ userId, requestId, tokens, limits: { ...UNLIMITED, ...limits }, now });

    it("admits a reservation, in the UTC day and month of now, and usage reports it", async () => {
      const u = user();
      const r = await reserve(u, req(), 120);
      assert.deepEqual(r, {
        ok: true,
        window: { day: "2031-03-10", month: "2031-03" },
        duplicate: false,
        // The windows with this reservation in them, for OpenAI's rate-limit headers.
        counts: { dailyRequests: 1, dailyTokens: 120, monthlyRequests: 1, monthlyTokens: 120 },
      });
      const usage = await store.usage(u, NOW);
      assert.deepEqual(usage, {
        window: { day: "2031-03-10", month: "2031-03" },
        daily: { requests: 1, tokensUsed: 0, tokensReserved: 120 },
        monthly: { requests: 1, tokensUsed: 0, tokensReserved: 120 },
        dailyResetAt: at("2031-03-11T00:00:00Z"),
        monthlyResetAt: at("2031-04-01T00:00:00Z"),
      });
    });

    it("usage of a fresh user is all zeros with the reset times of now's windows", async () => {
      const usage = await store.usage(user(), at("2031-12-31T12:34:56Z"));
      assert.deepEqual(usage, {
        window: { day: "2031-12-31", month: "2031-12" },
        daily: zero,
        monthly: zero,
        dailyResetAt: at("2032-01-01T00:00:00Z"),
        monthlyResetAt: at("2032-01-01T00:00:00Z"),
      });
    });

    it("200 concurrent reserves against a 100-request daily limit admit exactly 100", async () => {
      const u = user();
      const results = await Promise.all(
        Array.from({ length: 200 }, () => reserve(u, req(), 10, { dailyRequests: 100 })),
      );
      const admitted = results.filter((r) => r.ok);
      assert.equal(admitted.length, 100);
      for (const r of results) if (!r.ok) assert.equal(r.limit, "daily_requests");
      const usage = await store.usage(u, NOW);
      assert.deepEqual(usage.daily, { requests: 100, tokensUsed: 0, tokensReserved: 1000 });
      assert.deepEqual(usage.monthly, { requests: 100, tokensUsed: 0, tokensReserved: 1000 });
    });

    it("200 concurrent reserves of 100 tokens against a 10,000-token daily limit admit exactly 100", async () => {
      const u = user();
      const results = await Promise.all(
        Array.from({ length: 200 }, () => reserve(u, req(), 100, { dailyTokens: 10_000 })),
      );
      assert.equal(results.filter((r) => r.ok).length, 100);
      assert.deepEqual((await store.usage(u, NOW)).daily, { requests: 100, tokensUsed: 0, tokensReserved: 10_000 });
    });

    it("200 concurrent reserves of varied estimates never admit more tokens than the limit", async () => {
      const u = user();
      const estimates = Array.from({ length: 200 }, (_, i) => 1 + ((i * 7919) % 250));
      const limit = 12_345;
      const results = await Promise.all(estimates.map((t) => reserve(u, req(), t, { monthlyTokens: limit })));
      let admittedTokens = 0;
      results.forEach((r, i) => {
        const tokens = estimates[i] ?? 0;
        if (r.ok) admittedTokens += tokens;
        else {
          assert.equal(r.limit, "monthly_tokens");
          assert.equal(r.limitValue, limit);
          assert.ok(r.current + tokens > limit, "a rejection must be one that would not fit");
        }
      });
      assert.ok(admittedTokens <= limit, `admitted ${admittedTokens} > ${limit}`);
      assert.ok(admittedTokens > limit - 250, "the limit is filled up to the last estimate that fits");
      const usage = await store.usage(u, NOW);
      assert.equal(usage.monthly.tokensReserved, admittedTokens);
      assert.equal(usage.daily.tokensReserved, admittedTokens);
    });

    it("the same requestId reserved concurrently counts once; the others are duplicates", async () => {
      const u = user();
      const id = req();
      const results = await Promise.all(Array.from({ length: 50 }, () => reserve(u, id, 40, { dailyRequests: 10 })));
      assert.ok(results.every((r) => r.ok));
      assert.equal(results.filter((r) => r.ok && !r.duplicate).length, 1);
      assert.deepEqual((await store.usage(u, NOW)).daily, { requests: 1, tokensUsed: 0, tokensReserved: 40 });
    });

    it("a duplicate is admitted even when the limit is now full, and reports the recorded window", async () => {
      const u = user();
      const id = req();
      await reserve(u, id, 10, { dailyRequests: 1 }, at("2031-05-31T23:59:00Z"));
      const again = await reserve(u, id, 10, { dailyRequests: 1 }, at("2031-06-01T08:00:00Z"));
      assert.deepEqual(again, { ok: true, window: { day: "2031-05-31", month: "2031-05" }, duplicate: true });
      const full = await reserve(u, id, 10, { dailyRequests: 0 }, at("2031-05-31T23:59:30Z"));
      assert.deepEqual(full, { ok: true, window: { day: "2031-05-31", month: "2031-05" }, duplicate: true });
      assert.equal((await store.usage(u, at("2031-06-01T08:00:00Z"))).daily.requests, 0);
    });

    it("settle replaces the reservation by the real count: used = sum of actual, reserved back to 0", async () => {
      const u = user();
      const ids = [req(), req(), req()];
      const estimates = [500, 300, 200];
      const actual = [123, 300, 7];
      for (const [i, id] of ids.entries()) assert.ok((await reserve(u, id, estimates[i] ?? 0)).ok);
      for (const [i, id] of ids.entries()) {
        assert.equal(await store.settle({ userId: u, requestId: id, actualTokens: actual[i] ?? 0 }), "settled");
      }
      const usage = await store.usage(u, NOW);
      assert.deepEqual(usage.daily, { requests: 3, tokensUsed: 430, tokensReserved: 0 });
      assert.deepEqual(usage.monthly, { requests: 3, tokensUsed: 430, tokensReserved: 0 });
    });

    it("settled usage counts against the token limit instead of the estimate", async () => {
      const u = user();
      const big = req();
      assert.ok((await reserve(u, big, 900, { dailyTokens: 1000 })).ok);
      assert.equal((await reserve(u, req(), 200, { dailyTokens: 1000 })).ok, false);
      // settle the 900-token estimate at 100 real tokens: 800 come back
      await store.settle({ userId: u, requestId: big, actualTokens: 100 });
      assert.ok((await reserve(u, req(), 900, { dailyTokens: 1000 })).ok);
      const r = await reserve(u, req(), 1, { dailyTokens: 1000 });
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.current, 1000);
    });

    it("settling twice (even concurrently) changes nothing the second time", async () => {
      const u = user();
      const id = req();
      await reserve(u, id, 100);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.settle({ userId: u, requestId: id, actualTokens: 60 + i })),
      );
      assert.equal(results.filter((r) => r === "settled").length, 1);
      assert.equal(results.filter((r) => r === "already_settled").length, 9);
      const settledWith = 60 + results.indexOf("settled");
      const before = await store.usage(u, NOW);
      assert.deepEqual(before.daily, { requests: 1, tokensUsed: settledWith, tokensReserved: 0 });
      assert.equal(await store.settle({ userId: u, requestId: id, actualTokens: 999 }), "already_settled");
      assert.deepEqual(await store.usage(u, NOW), before);
    });

    it("a released request gives back its tokens and its request count", async () => {
      const u = user();
      const keep = req();
      const drop = req();
      await reserve(u, keep, 70);
      await reserve(u, drop, 250);
      assert.deepEqual((await store.usage(u, NOW)).daily, { requests: 2, tokensUsed: 0, tokensReserved: 320 });
      assert.equal(await store.release({ userId: u, requestId: drop }), "released");
      const usage = await store.usage(u, NOW);
      assert.deepEqual(usage.daily, { requests: 1, tokensUsed: 0, tokensReserved: 70 });
      assert.deepEqual(usage.monthly, { requests: 1, tokensUsed: 0, tokensReserved: 70 });
      assert.equal(await store.release({ userId: u, requestId: drop }), "already_released");
      assert.deepEqual(await store.usage(u, NOW), usage);
    });

    it("a released request frees room under a request limit; reserving its id again is a duplicate", async () => {
      const u = user();
      const id = req();
      await reserve(u, id, 1, { dailyRequests: 1 });
      assert.equal((await reserve(u, req(), 1, { dailyRequests: 1 })).ok, false);
      await store.release({ userId: u, requestId: id });
      assert.deepEqual(await reserve(u, id, 1, { dailyRequests: 1 }), {
        ok: true,
        window: { day: "2031-03-10", month: "2031-03" },
        duplicate: true,
      });
      assert.equal((await reserve(u, req(), 1, { dailyRequests: 1 })).ok, true);
    });

    it("settle after release and release after settle change nothing", async () => {
      const u = user();
      const released = req();
      const settled = req();
      await reserve(u, released, 100);
      await reserve(u, settled, 100);
      await store.release({ userId: u, requestId: released });
      await store.settle({ userId: u, requestId: settled, actualTokens: 42 });
      const before = await store.usage(u, NOW);
      assert.deepEqual(before.daily, { requests: 1, tokensUsed: 42, tokensReserved: 0 });
      assert.equal(await store.settle({ userId: u, requestId: released, actualTokens: 5 }), "already_released");
      assert.equal(await store.release({ userId: u, requestId: settled }), "already_settled");
      assert.deepEqual(await store.usage(u, NOW), before);
    });

    it("a window the caller passes is only a hint: the right one settles at once, a wrong one changes nothing and the reservation's own windows are used", async () => {
      const u = user();
      const [right, wrong, released] = [req(), req(), req()];
      const window = { day: "2031-03-10", month: "2031-03" };
      const elsewhere = { day: "2031-02-01", month: "2031-02" };
      for (const id of [right, wrong, released]) await reserve(u, id, 100);
      assert.equal(await store.settle({ userId: u, requestId: right, actualTokens: 7, window }), "settled");
      assert.equal(await store.settle({ userId: u, requestId: wrong, actualTokens: 9, window: elsewhere }), "settled");
      assert.equal(await store.release({ userId: u, requestId: released, window: elsewhere }), "released");
      assert.equal(await store.settle({ userId: u, requestId: right, actualTokens: 7, window }), "already_settled");
      assert.deepEqual((await store.usage(u, NOW)).daily, { requests: 2, tokensUsed: 16, tokensReserved: 0 });
      assert.equal((await store.usage(u, at("2031-02-01T12:00:00Z"))).daily.tokensUsed, 0, "the wrong window was not touched");
    });

    it("settle and release of an unknown reservation answer unknown_reservation", async () => {
      const u = user();
      const id = req();
      await reserve(u, id, 10);
      assert.equal(await store.settle({ userId: u, requestId: req(), actualTokens: 1 }), "unknown_reservation");
      assert.equal(await store.release({ userId: u, requestId: req() }), "unknown_reservation");
      // a reservation belongs to its user
      assert.equal(await store.settle({ userId: user(), requestId: id, actualTokens: 1 }), "unknown_reservation");
      assert.equal(await store.release({ userId: user(), requestId: id }), "unknown_reservation");
      assert.deepEqual((await store.usage(u, NOW)).daily, { requests: 1, tokensUsed: 0, tokensReserved: 10 });
    });

    it("windows are the calendar UTC day and month: reserved at 23:59:59 on the month's last day, settled after midnight", async () => {
      const u = user();
      const id = req();
      const lastSecond = at("2031-01-31T23:59:59Z");
      const afterMidnight = at("2031-02-01T00:00:01Z");
      assert.deepEqual(await reserve(u, id, 500, {}, lastSecond), {
        ok: true,
        window: { day: "2031-01-31", month: "2031-01" },
        duplicate: false,
        counts: { dailyRequests: 1, dailyTokens: 500, monthlyRequests: 1, monthlyTokens: 500 },
      });
      // a new request after midnight opens February's windows
      const next = req();
      assert.deepEqual(await reserve(u, next, 50, {}, afterMidnight), {
        ok: true,
        window: { day: "2031-02-01", month: "2031-02" },
        duplicate: false,
        counts: { dailyRequests: 1, dailyTokens: 50, monthlyRequests: 1, monthlyTokens: 50 },
      });
      assert.equal(await store.settle({ userId: u, requestId: id, actualTokens: 321 }), "settled");
      const jan = await store.usage(u, lastSecond);
      assert.deepEqual(jan.daily, { requests: 1, tokensUsed: 321, tokensReserved: 0 });
      assert.deepEqual(jan.monthly, { requests: 1, tokensUsed: 321, tokensReserved: 0 });
      assert.deepEqual(jan.dailyResetAt, at("2031-02-01T00:00:00Z"));
      assert.deepEqual(jan.monthlyResetAt, at("2031-02-01T00:00:00Z"));
      const feb = await store.usage(u, afterMidnight);
      assert.deepEqual(feb.daily, { requests: 1, tokensUsed: 0, tokensReserved: 50 });
      assert.deepEqual(feb.monthly, { requests: 1, tokensUsed: 0, tokensReserved: 50 });
      assert.equal(await store.release({ userId: u, requestId: next }), "released");
      assert.deepEqual((await store.usage(u, afterMidnight)).monthly, zero);
      assert.deepEqual((await store.usage(u, lastSecond)).monthly, jan.monthly);
    });

    it("the daily window resets at UTC midnight, the monthly one does not", async () => {
      const u = user();
      const limits = { dailyRequests: 1, monthlyRequests: 2 };
      assert.equal((await reserve(u, req(), 1, limits, at("2031-07-14T23:00:00Z"))).ok, true);
      const r = await reserve(u, req(), 1, limits, at("2031-07-14T23:59:59.999Z"));
      assert.ok(!r.ok && r.limit === "daily_requests" && r.retryAfterSeconds === 1);
      assert.equal((await reserve(u, req(), 1, limits, at("2031-07-15T00:00:00Z"))).ok, true);
      const m = await reserve(u, req(), 1, limits, at("2031-07-16T00:00:00Z"));
      assert.ok(!m.ok && m.limit === "monthly_requests");
      assert.equal((await reserve(u, req(), 1, limits, at("2031-08-01T00:00:00Z"))).ok, true);
    });

    describe("each limit rejects with its name, current, limit value and Retry-After", () => {
      it("daily_requests", async () => {
        const u = user();
        for (let i = 0; i < 3; i++) assert.ok((await reserve(u, req(), 5, { dailyRequests: 3 })).ok);
        assert.deepEqual(await reserve(u, req(), 5, { dailyRequests: 3 }), {
          ok: false,
          limit: "daily_requests",
          limitValue: 3,
          current: 3,
          retryAfterSeconds: 6 * 3600,
        });
      });

      it("daily_tokens (current = used + reserved)", async () => {
        const u = user();
        const id = req();
        await reserve(u, id, 600, { dailyTokens: 1000 });
        await store.settle({ userId: u, requestId: id, actualTokens: 300 });
        assert.ok((await reserve(u, req(), 500, { dailyTokens: 1000 })).ok);
        assert.deepEqual(await reserve(u, req(), 201, { dailyTokens: 1000 }), {
          ok: false,
          limit: "daily_tokens",
          limitValue: 1000,
          current: 800,
          retryAfterSeconds: 6 * 3600,
        });
        assert.ok((await reserve(u, req(), 200, { dailyTokens: 1000 })).ok, "exactly up to the limit is allowed");
      });

      it("monthly_requests (counted across the month's days)", async () => {
        const u = user();
        const limits = { monthlyRequests: 2, dailyRequests: 10 };
        assert.ok((await reserve(u, req(), 1, limits, at("2031-03-01T00:00:00Z"))).ok);
        assert.ok((await reserve(u, req(), 1, limits, at("2031-03-05T12:00:00Z"))).ok);
        assert.deepEqual(await reserve(u, req(), 1, limits, NOW), {
          ok: false,
          limit: "monthly_requests",
          limitValue: 2,
          current: 2,
          retryAfterSeconds: 21 * 86_400 + 6 * 3600,
        });
      });

      it("monthly_tokens", async () => {
        const u = user();
        const limits = { monthlyTokens: 5000, dailyTokens: 4000 };
        const earlier = req();
        await reserve(u, earlier, 3000, limits, at("2031-03-02T10:00:00Z"));
        await store.settle({ userId: u, requestId: earlier, actualTokens: 2500 });
        assert.ok((await reserve(u, req(), 2000, limits, NOW)).ok);
        assert.deepEqual(await reserve(u, req(), 501, limits, NOW), {
          ok: false,
          limit: "monthly_tokens",
          limitValue: 5000,
          current: 4500,
          retryAfterSeconds: 21 * 86_400 + 6 * 3600,
        });
      });

      it("when several fail, the monthly one is reported (its Retry-After is the one worth waiting for)", async () => {
        const u = user();
        const limits = { dailyRequests: 1, dailyTokens: 10, monthlyRequests: 1, monthlyTokens: 10 };
        assert.ok((await reserve(u, req(), 10, limits)).ok);
        const r = await reserve(u, req(), 10, limits);
        assert.ok(!r.ok);
        assert.equal(r.limit, "monthly_requests");
        const t = await reserve(u, req(), 10, { ...limits, monthlyRequests: null });
        assert.ok(!t.ok && t.limit === "monthly_tokens");
      });

      it("null is unlimited and 0 admits nothing", async () => {
        const u = user();
        for (let i = 0; i < 5; i++) assert.ok((await reserve(u, req(), 1_000_000)).ok);
        const r = await reserve(user(), req(), 1, { dailyRequests: 0 });
        assert.ok(!r.ok && r.limit === "daily_requests" && r.current === 0 && r.limitValue === 0);
      });
    });

    it("a rejected reserve changes nothing and records no reservation", async () => {
      const u = user();
      const limits = { dailyRequests: 2, dailyTokens: 100 };
      await reserve(u, req(), 60, limits);
      const before = await store.usage(u, NOW);
      const id = req();
      const r = await reserve(u, id, 41, limits);
      assert.equal(r.ok, false);
      assert.deepEqual(await store.usage(u, NOW), before);
      assert.equal(await store.settle({ userId: u, requestId: id, actualTokens: 1 }), "unknown_reservation");
      assert.equal(await store.release({ userId: u, requestId: id }), "unknown_reservation");
      // with room again the same id is a fresh reservation, not a duplicate
      assert.deepEqual(await reserve(u, id, 40, limits), {
        ok: true,
        window: { day: "2031-03-10", month: "2031-03" },
        duplicate: false,
        counts: { dailyRequests: 2, dailyTokens: 100, monthlyRequests: 2, monthlyTokens: 100 },
      });
    });

    it("rejects invalid input without touching anything", async () => {
      const u = user();
      await assert.rejects(reserve(u, req(), -1), RangeError);
      await assert.rejects(reserve(u, req(), 1.5), RangeError);
      await assert.rejects(reserve(u, req(), 1, { dailyTokens: -5 }), RangeError);
      await assert.rejects(reserve("bad{user}", req(), 1), RangeError);
      await assert.rejects(store.settle({ userId: u, requestId: req(), actualTokens: -3 }), RangeError);
      assert.deepEqual((await store.usage(u, NOW)).daily, zero);
    });
  });
}

describe("RedisQuotaStore: key layout and expiry", { skip: redisSkip }, () => {
  it("keeps every key of a user under the hash tag {userId}, expiring at instants from the window", async () => {
    const store = new RedisQuotaStore({ redis: redis(), keyPrefix });
    const u = user();
    const id = req();
    await store.reserve({ userId: u, requestId: id, tokens: 77, limits: UNLIMITED, now: at("2031-01-31T23:59:59Z") });
    const k = store.keys(u);
    const dayKey = `${keyPrefix}quota:{${u}}:d:2031-01-31`;
    const monthKey = `${keyPrefix}quota:{${u}}:m:2031-01`;
    const resKey = `${keyPrefix}quota:{${u}}:r:${id}`;
    assert.equal(k.day("2031-01-31"), dayKey);
    assert.equal(k.month("2031-01"), monthKey);
    assert.equal(k.reservation(id), resKey);
    const r = redis();
    assert.deepEqual(await r.hgetall(dayKey), { requests: "1", reserved: "77" });
    assert.deepEqual(await r.hgetall(monthKey), { requests: "1", reserved: "77" });
    assert.deepEqual(await r.hgetall(resKey), { tokens: "77", day: "2031-01-31", month: "2031-01", state: "reserved" });
    assert.equal(await r.call("EXPIRETIME", dayKey), Date.parse("2031-02-03T00:00:00Z") / 1000);
    assert.equal(await r.call("EXPIRETIME", dayKey), dayKeyExpireAt("2031-01-31"));
    assert.equal(await r.call("EXPIRETIME", monthKey), monthKeyExpireAt("2031-01"));
    assert.equal(await r.call("EXPIRETIME", resKey), reservationExpireAt({ day: "2031-01-31", month: "2031-01" }));
    await store.settle({ userId: u, requestId: id, actualTokens: 70 });
    assert.deepEqual(await r.hgetall(resKey), {
      tokens: "77",
      day: "2031-01-31",
      month: "2031-01",
      state: "settled",
      actual: "70",
    });
    assert.deepEqual(await r.hgetall(dayKey), { requests: "1", reserved: "0", used: "70" });
    assert.equal(await r.call("EXPIRETIME", dayKey), dayKeyExpireAt("2031-01-31"));
  });

  it("a settle arriving after its windows' retention leaves no key without expiry", async () => {
    const store = new RedisQuotaStore({ redis: redis(), keyPrefix });
    const u = user();
    const id = req();
    await store.reserve({ userId: u, requestId: id, tokens: 5, limits: UNLIMITED, now: at("2031-04-01T10:00:00Z") });
    const dayKey = store.keys(u).day("2031-04-01");
    await redis().del(dayKey); // as if the day key had expired
    assert.equal(await store.settle({ userId: u, requestId: id, actualTokens: 5 }), "settled");
    assert.equal(await redis().call("EXPIRETIME", dayKey), dayKeyExpireAt("2031-04-01"));
    assert.deepEqual(await redis().hgetall(dayKey), { used: "5" });
  });
});

describe("RedisQuotaStore: connection, prefix and the reservation's own window", { skip: redisSkip }, () => {
  it("a release after its day key is gone gives the month back and leaves no key without expiry", async () => {
    const store = new RedisQuotaStore({ redis: redis(), keyPrefix });
    const u = user();
    const id = req();
    await store.reserve({ userId: u, requestId: id, tokens: 9, limits: UNLIMITED, now: at("2031-04-02T10:00:00Z") });
    const k = store.keys(u);
    await redis().del(k.day("2031-04-02"));
    assert.equal(await store.release({ userId: u, requestId: id }), "released");
    assert.equal(await redis().exists(k.day("2031-04-02")), 0, "nothing to give back in a day already gone");
    assert.equal(await redis().call("EXPIRETIME", k.month("2031-04")), monthKeyExpireAt("2031-04"));
    assert.deepEqual(await redis().hgetall(k.month("2031-04")), { requests: "0", reserved: "0" });
  });

  it("settles and releases in the window the reservation was made in, whatever the time now", async () => {
    const store = new RedisQuotaStore({ redis: redis(), keyPrefix });
    const u = user();
    const settled = req();
    const released = req();
    await store.reserve({ userId: u, requestId: settled, tokens: 40, limits: UNLIMITED, now: at("2031-06-30T23:00:00Z") });
    await store.reserve({ userId: u, requestId: released, tokens: 20, limits: UNLIMITED, now: at("2031-06-30T23:00:00Z") });
    assert.equal(await store.settle({ userId: u, requestId: settled, actualTokens: 11 }), "settled");
    assert.equal(await store.release({ userId: u, requestId: released }), "released");
    const june = await store.usage(u, at("2031-06-30T23:30:00Z"));
    assert.deepEqual(june.daily, { requests: 1, tokensUsed: 11, tokensReserved: 0 });
    assert.deepEqual(june.monthly, { requests: 1, tokensUsed: 11, tokensReserved: 0 });
    assert.deepEqual((await store.usage(u, at("2031-07-01T00:30:00Z"))).daily, zero);
  });

  it("keys have no prefix unless one is given", () => {
    const store = new RedisQuotaStore({ redis: redis() });
    assert.equal(store.keys("u").day("2031-01-02"), "quota:{u}:d:2031-01-02");
    assert.equal(store.keys("u").month("2031-01"), "quota:{u}:m:2031-01");
    assert.equal(store.keys("u").reservation("r"), "quota:{u}:r:r");
  });

  it("close() quits the client only when the store owns it", async () => {
    const shared = new Redis(TEST_URLS.redis);
    try {
      await new RedisQuotaStore({ redis: shared, keyPrefix }).close();
      assert.equal(await shared.ping(), "PONG", "a client the caller owns stays open");
      const owned = new RedisQuotaStore({ redis: shared, keyPrefix, ownsConnection: true });
      await owned.ping();
      await owned.close();
      await assert.rejects(shared.ping(), "the client the store owns is quit");
    } finally {
      shared.disconnect();
    }
  });
});

describe("MemoryQuotaStore: expiry follows the same instants as the Redis keys", () => {
  it("drops a day's counters two days after the day ends and the month's 40 days after it ends", async () => {
    let clock = Date.parse("2031-01-15T12:00:00Z");
    const store = new MemoryQuotaStore({ clock: () => clock });
    const u = user();
    const id = req();
    const now = at("2031-01-15T12:00:00Z");
    await store.reserve({ userId: u, requestId: id, tokens: 9, limits: UNLIMITED, now });
    clock = Date.parse("2031-01-17T23:59:59Z");
    assert.equal((await store.usage(u, now)).daily.requests, 1);
    clock = Date.parse("2031-01-18T00:00:00Z");
    assert.deepEqual((await store.usage(u, now)).daily, zero);
    assert.equal((await store.usage(u, now)).monthly.requests, 1);
    clock = Date.parse("2031-03-13T00:00:00Z");
    assert.deepEqual((await store.usage(u, now)).monthly, zero);
    assert.equal(await store.settle({ userId: u, requestId: id, actualTokens: 1 }), "unknown_reservation");
  });
});

// ------------------------------------------------------------------ property: Redis == memory == ledger

type Op =
  | { kind: "reserve"; req: number; tokens: number; hour: number }
  | { kind: "settle"; req: number; fraction: number }
  | { kind: "release"; req: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("reserve" as const), req: fc.nat(9), tokens: fc.nat(150), hour: fc.nat(80) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("settle" as const), req: fc.nat(9), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), req: fc.nat(9) }) },
);
const limitArb = (max: number) => fc.option(fc.nat(max), { nil: null, freq: 3 });
const limitsArb: fc.Arbitrary<QuotaLimits> = fc.record({
  dailyRequests: limitArb(5),
  dailyTokens: limitArb(300),
  monthlyRequests: limitArb(8),
  monthlyTokens: limitArb(500),
});
/** 80 hours from here cross two midnights and a month end. */
const PROPERTY_BASE = Date.parse("2031-01-30T12:00:00Z");

interface LedgerEntry {
  tokens: number;
  day: string;
  month: string;
  state: "reserved" | "settled" | "released";
  actual: number;
}

function ledgerUsage(ledger: Map<number, LedgerEntry>, usage: QuotaUsage) {
  const sum = (inWindow: (e: LedgerEntry) => boolean) => {
    let requests = 0;
    let tokensUsed = 0;
    let tokensReserved = 0;
    for (const e of ledger.values()) {
      if (!inWindow(e) || e.state === "released") continue;
      requests += 1;
      if (e.state === "settled") tokensUsed += e.actual;
      else tokensReserved += e.tokens;
    }
    return { requests, tokensUsed, tokensReserved };
  };
  return { daily: sum((e) => e.day === usage.window.day), monthly: sum((e) => e.month === usage.window.month) };
}

function assertWithinLimits(usage: QuotaUsage, limits: QuotaLimits): void {
  const within = (value: number, limit: number | null, what: string) =>
    assert.ok(limit === null || value <= limit, `${what} ${value} exceeds ${String(limit)}`);
  within(usage.daily.requests, limits.dailyRequests, "daily requests");
  within(usage.daily.tokensUsed + usage.daily.tokensReserved, limits.dailyTokens, "daily tokens");
  within(usage.monthly.requests, limits.monthlyRequests, "monthly requests");
  within(usage.monthly.tokensUsed + usage.monthly.tokensReserved, limits.monthlyTokens, "monthly tokens");
}

/** Limits with every limit but `name` lifted. */
function only(limits: QuotaLimits, name: QuotaLimitName): QuotaLimits {
  const value = limitValueOf(limits, name);
  return {
    dailyRequests: name === "daily_requests" ? value : null,
    dailyTokens: name === "daily_tokens" ? value : null,
    monthlyRequests: name === "monthly_requests" ? value : null,
    monthlyTokens: name === "monthly_tokens" ? value : null,
  };
}

describe("QuotaStore property: Redis and memory agree, match the ledger, never exceed a limit", { skip: redisSkip }, () => {
  it("random reserve/settle/release sequences (actual usage never above the estimate)", async () => {
    const redisStore = new RedisQuotaStore({ redis: redis(), keyPrefix });
    let multiFailures = 0;
    await fc.assert(
      fc.asyncProperty(limitsArb, fc.array(opArb, { minLength: 1, maxLength: 40 }), async (limits, ops) => {
        const memoryStore = new MemoryQuotaStore();
        const u = user();
        const ids = Array.from({ length: 10 }, () => req());
        const ledger = new Map<number, LedgerEntry>();
        const instants = new Set<number>();
        for (const op of ops) {
          const id = ids[op.req] ?? "missing";
          let now = new Date(PROPERTY_BASE);
          if (op.kind === "reserve") {
            now = new Date(PROPERTY_BASE + op.hour * 3_600_000);
            instants.add(now.getTime());
            const input = { userId: u, requestId: id, tokens: op.tokens, limits, now };
            const before = await memoryStore.usage(u, now);
            const fromRedis: ReserveResult = await redisStore.reserve(input);
            const fromMemory = await memoryStore.reserve(input);
            assert.deepEqual(fromRedis, fromMemory);
            if (!ledger.has(op.req)) {
              const failure = firstFailingLimit(before, limits, op.tokens);
              if (failure) {
                const overlapping = LIMIT_CHECK_ORDER.filter((l) => firstFailingLimit(before, only(limits, l), op.tokens));
                if (overlapping.length > 1) multiFailures += 1;
              }
              assert.deepEqual(
                fromRedis,
                failure
                  ? { ok: false, ...failure, retryAfterSeconds: retryAfterSeconds(failure.limit, now) }
                  : {
                      ok: true,
                      window: quotaWindow(now),
                      duplicate: false,
                      counts: {
                        dailyRequests: before.daily.requests + 1,
                        dailyTokens: before.daily.tokensUsed + before.daily.tokensReserved + op.tokens,
                        monthlyRequests: before.monthly.requests + 1,
                        monthlyTokens: before.monthly.tokensUsed + before.monthly.tokensReserved + op.tokens,
                      },
                    },
              );
            }
            if (fromRedis.ok && !fromRedis.duplicate) {
              assert.equal(ledger.has(op.req), false);
              ledger.set(op.req, { tokens: op.tokens, ...fromRedis.window, state: "reserved", actual: 0 });
            }
            if (fromRedis.ok && fromRedis.duplicate) assert.equal(ledger.has(op.req), true);
          } else if (op.kind === "settle") {
            const entry = ledger.get(op.req);
            const actualTokens = Math.floor(op.fraction * (entry?.tokens ?? 10));
            const input = { userId: u, requestId: id, actualTokens };
            const fromRedis = await redisStore.settle(input);
            assert.equal(fromRedis, await memoryStore.settle(input));
            const expected = !entry
              ? "unknown_reservation"
              : entry.state === "reserved"
                ? "settled"
                : entry.state === "settled"
                  ? "already_settled"
                  : "already_released";
            assert.equal(fromRedis, expected);
            if (entry && fromRedis === "settled") Object.assign(entry, { state: "settled", actual: actualTokens });
          } else {
            const entry = ledger.get(op.req);
            const fromRedis = await redisStore.release({ userId: u, requestId: id });
            assert.equal(fromRedis, await memoryStore.release({ userId: u, requestId: id }));
            const expected = !entry
              ? "unknown_reservation"
              : entry.state === "reserved"
                ? "released"
                : entry.state === "settled"
                  ? "already_settled"
                  : "already_released";
            assert.equal(fromRedis, expected);
            if (entry && fromRedis === "released") entry.state = "released";
          }
          for (const t of [now.getTime(), ...instants]) {
            const when = new Date(t);
            const usage = await redisStore.usage(u, when);
            assert.deepEqual(usage, await memoryStore.usage(u, when));
            assert.deepEqual({ daily: usage.daily, monthly: usage.monthly }, ledgerUsage(ledger, usage));
            assertWithinLimits(usage, limits);
          }
        }
        await memoryStore.close();
      }),
      { numRuns: 60 },
    );
    // the generator must reach rejections where several limits fail at once (the order matters there)
    assert.ok(multiFailures > 0, "no sequence broke two limits at once");
  });
});

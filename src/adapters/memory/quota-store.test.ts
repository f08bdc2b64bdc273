/** The memory store's own edges (the shared semantics are in test/contract/quota-store.test.ts). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryQuotaStore } from "./quota-store.js";
import { dayKeyExpireAt, monthKeyExpireAt, reservationExpireAt } from "../../domain/quota-windows.js";
import type { QuotaLimits } from "../../domain/ports.js";

const UNLIMITED: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };
const NOW = new Date("2031-03-10T18:00:00Z");
const zero = { requests: 0, tokensUsed: 0, tokensReserved: 0 };

function storeAt(start = NOW.getTime()) {
  const time = { now: start };
  const store = new MemoryQuotaStore({ clock: () => time.now });
  return { store, time };
}

describe("MemoryQuotaStore", () => {
  it("refuses every operation once closed, and forgets everything", async () => {
    const { store } = storeAt();
    await store.ping();
    await store.reserve({ userId: "u", requestId: "r", tokens: 5, limits: UNLIMITED, now: NOW });
    await store.close();
    const closed = { name: "Error", message: "MemoryQuotaStore is closed" };
    await assert.rejects(store.ping(), closed);
    await assert.rejects(store.reserve({ userId: "u", requestId: "r2", tokens: 1, limits: UNLIMITED, now: NOW }), closed);
    await assert.rejects(store.settle({ userId: "u", requestId: "r", actualTokens: 1 }), closed);
    await assert.rejects(store.release({ userId: "u", requestId: "r" }), closed);
    await assert.rejects(store.usage("u", NOW), closed);
  });

  it("validates every input", async () => {
    const { store } = storeAt();
    await assert.rejects(store.reserve({ userId: "{u}", requestId: "r", tokens: 1, limits: UNLIMITED, now: NOW }), RangeError);
    await assert.rejects(store.reserve({ userId: "u", requestId: "", tokens: 1, limits: UNLIMITED, now: NOW }), RangeError);
    await assert.rejects(store.reserve({ userId: "u", requestId: "r", tokens: -1, limits: UNLIMITED, now: NOW }), /tokens/);
    await assert.rejects(store.reserve({ userId: "u", requestId: "r", tokens: 1, limits: { ...UNLIMITED, dailyTokens: -1 }, now: NOW }), /limits\.dailyTokens/);
    await assert.rejects(store.settle({ userId: "u", requestId: "r", actualTokens: 0.5 }), /actualTokens/);
    await assert.rejects(store.settle({ userId: "", requestId: "r", actualTokens: 1 }), RangeError);
    await assert.rejects(store.release({ userId: "u", requestId: "" }), RangeError);
    await assert.rejects(store.usage("a{b", NOW), RangeError);
    assert.deepEqual((await store.usage("u", NOW)).daily, zero);
  });

  it("counters live until exactly their expiry instant, reservations until theirs", async () => {
    const { store, time } = storeAt();
    await store.reserve({ userId: "u", requestId: "r", tokens: 8, limits: UNLIMITED, now: NOW });
    const dayGone = dayKeyExpireAt("2031-03-10") * 1000;
    const monthGone = monthKeyExpireAt("2031-03") * 1000;
    const reservationGone = reservationExpireAt({ day: "2031-03-10", month: "2031-03" }) * 1000;
    time.now = dayGone - 1;
    assert.deepEqual((await store.usage("u", NOW)).daily, { requests: 1, tokensUsed: 0, tokensReserved: 8 });
    time.now = dayGone;
    assert.deepEqual((await store.usage("u", NOW)).daily, zero);
    assert.deepEqual((await store.usage("u", NOW)).monthly, { requests: 1, tokensUsed: 0, tokensReserved: 8 });
    time.now = monthGone;
    assert.deepEqual((await store.usage("u", NOW)).monthly, zero);
    time.now = reservationGone - 1;
    const duplicate = await store.reserve({ userId: "u", requestId: "r", tokens: 8, limits: UNLIMITED, now: new Date(time.now) });
    assert.deepEqual(duplicate, { ok: true, window: { day: "2031-03-10", month: "2031-03" }, duplicate: true });
    time.now = reservationGone;
    assert.equal(await store.settle({ userId: "u", requestId: "r", actualTokens: 8 }), "unknown_reservation");
  });

  it("a settle after the day's counters expired leaves the day empty and still closes the reservation", async () => {
    const { store, time } = storeAt();
    await store.reserve({ userId: "u", requestId: "r", tokens: 8, limits: UNLIMITED, now: NOW });
    time.now = dayKeyExpireAt("2031-03-10") * 1000;
    assert.equal(await store.settle({ userId: "u", requestId: "r", actualTokens: 3 }), "settled");
    assert.deepEqual((await store.usage("u", NOW)).daily, zero);
    assert.deepEqual((await store.usage("u", NOW)).monthly, { requests: 1, tokensUsed: 3, tokensReserved: 0 });
    assert.equal(await store.release({ userId: "u", requestId: "r" }), "already_settled");
  });

  it("a sweep drops expired records, and a request reserved again after its record expired counts anew", async () => {
    const { store, time } = storeAt();
    await store.reserve({ userId: "u", requestId: "r", tokens: 8, limits: UNLIMITED, now: NOW });
    time.now = reservationExpireAt({ day: "2031-03-10", month: "2031-03" }) * 1000 + 60_000;
    const later = new Date(time.now);
    const again = await store.reserve({ userId: "u", requestId: "r", tokens: 2, limits: UNLIMITED, now: later });
    assert.equal(again.ok && again.duplicate, false);
    assert.deepEqual((await store.usage("u", later)).daily, { requests: 1, tokensUsed: 0, tokensReserved: 2 });
  });

  it("a release gives back tokens and the request, never below zero", async () => {
    const { store } = storeAt();
    await store.reserve({ userId: "u", requestId: "a", tokens: 8, limits: UNLIMITED, now: NOW });
    await store.reserve({ userId: "u", requestId: "b", tokens: 4, limits: UNLIMITED, now: NOW });
    assert.equal(await store.release({ userId: "u", requestId: "a" }), "released");
    assert.deepEqual((await store.usage("u", NOW)).daily, { requests: 1, tokensUsed: 0, tokensReserved: 4 });
    assert.equal(await store.release({ userId: "u", requestId: "a" }), "already_released");
    assert.equal(await store.settle({ userId: "u", requestId: "a", actualTokens: 1 }), "already_released");
    assert.equal(await store.release({ userId: "u", requestId: "b" }), "released");
    assert.deepEqual((await store.usage("u", NOW)).daily, zero);
    assert.deepEqual((await store.usage("u", NOW)).monthly, zero);
  });

  it("reports the reset instants of now's windows", async () => {
    const { store } = storeAt();
    const usage = await store.usage("u", NOW);
    assert.deepEqual(usage.window, { day: "2031-03-10", month: "2031-03" });
    assert.equal(usage.dailyResetAt.toISOString(), "2031-03-11T00:00:00.000Z");
    assert.equal(usage.monthlyResetAt.toISOString(), "2031-04-01T00:00:00.000Z");
  });

  it("a rejected reserve names the limit and when to retry", async () => {
    const { store } = storeAt();
    const result = await store.reserve({ userId: "u", requestId: "r", tokens: 5, limits: { ...UNLIMITED, dailyTokens: 4 }, now: NOW });
    assert.deepEqual(result, { ok: false, limit: "daily_tokens", limitValue: 4, current: 0, retryAfterSeconds: 6 * 3600 });
  });
});

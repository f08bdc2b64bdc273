/**
 * In-process quota store for the embedded single-process mode. Same semantics as the Redis store
 * (src/adapters/redis/quota-store.ts); the contract suite runs both. Every operation checks and
 * updates synchronously (no await in between), so it is atomic by construction.
 *
 * Records expire at the same instants as their Redis keys (computed from the window, see
 * quota-windows.ts); expired records read as absent and are swept now and then.
 */
import { replayQuota } from "../../domain/quota-replay.js";
import type {
  QuotaStore,
  QuotaUsage,
  QuotaWindow,
  ReleaseResult,
  RequestStore,
  ReserveInput,
  ReserveResult,
  SettleResult,
  WindowUsage,
} from "../../domain/ports.js";
import {
  assertCount,
  assertLimits,
  assertQuotaIds,
  dailyResetAt,
  dayKeyExpireAt,
  firstFailingLimit,
  monthKeyExpireAt,
  monthlyResetAt,
  quotaWindow,
  reservationExpireAt,
  retryAfterSeconds,
} from "../../domain/quota-windows.js";

interface Counters {
  requests: number;
  used: number;
  reserved: number;
  /** Unix ms after which the record is gone. */
  expiresAt: number;
}

interface Reservation {
  tokens: number;
  day: string;
  month: string;
  state: "reserved" | "settled" | "released";
  expiresAt: number;
}

export interface MemoryQuotaStoreOptions {
  /** Wall clock used only to expire records (default Date.now). */
  clock?: () => number;
}

const SWEEP_INTERVAL_MS = 60_000;

export class MemoryQuotaStore implements QuotaStore {
  private readonly windows = new Map<string, Counters>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly clock: () => number;
  private lastSweep = 0;
  private closed = false;

  constructor(options: MemoryQuotaStoreOptions = {}) {
    this.clock = options.clock ?? Date.now;
  }

  async reserve(input: ReserveInput): Promise<ReserveResult> {
    this.assertOpen();
    assertQuotaIds(input.userId, input.requestId);
    assertCount("tokens", input.tokens);
    assertLimits(input.limits);
    this.maybeSweep();
    const window = quotaWindow(input.now);

    const existing = this.liveReservation(input.userId, input.requestId);
    if (existing) return { ok: true, window: { day: existing.day, month: existing.month }, duplicate: true };

    const dayKey = windowKey(input.userId, "d", window.day);
    const monthKey = windowKey(input.userId, "m", window.month);
    const day = this.liveCounters(dayKey);
    const month = this.liveCounters(monthKey);
    const failure = firstFailingLimit(
      { daily: toUsage(day), monthly: toUsage(month) },
      input.limits,
      input.tokens,
    );
    if (failure) return { ok: false, ...failure, retryAfterSeconds: retryAfterSeconds(failure.limit, input.now) };

    const d = this.upsertCounters(dayKey, day, dayKeyExpireAt(window.day));
    const m = this.upsertCounters(monthKey, month, monthKeyExpireAt(window.month));
    d.requests += 1;
    d.reserved += input.tokens;
    m.requests += 1;
    m.reserved += input.tokens;
    this.reservations.set(reservationKey(input.userId, input.requestId), {
      tokens: input.tokens,
      day: window.day,
      month: window.month,
      state: "reserved",
      expiresAt: reservationExpireAt(window) * 1000,
    });
    const counts = { dailyRequests: d.requests, dailyTokens: d.used + d.reserved, monthlyRequests: m.requests, monthlyTokens: m.used + m.reserved };
    return { ok: true, window, duplicate: false, counts };
  }

  async settle(input: { userId: string; requestId: string; actualTokens: number }): Promise<SettleResult> {
    this.assertOpen();
    assertQuotaIds(input.userId, input.requestId);
    assertCount("actualTokens", input.actualTokens);
    return this.closeReservation(input.userId, input.requestId, "settled", (c) => {
      c.used += input.actualTokens;
    });
  }

  async release(input: { userId: string; requestId: string }): Promise<ReleaseResult> {
    this.assertOpen();
    assertQuotaIds(input.userId, input.requestId);
    return this.closeReservation(input.userId, input.requestId, "released", (c) => {
      c.requests = Math.max(0, c.requests - 1);
    });
  }

  async usage(userId: string, now: Date): Promise<QuotaUsage> {
    this.assertOpen();
    assertQuotaIds(userId);
    const window: QuotaWindow = quotaWindow(now);
    return {
      window,
      daily: toUsage(this.liveCounters(windowKey(userId, "d", window.day))),
      monthly: toUsage(this.liveCounters(windowKey(userId, "m", window.month))),
      dailyResetAt: dailyResetAt(now),
      monthlyResetAt: monthlyResetAt(now),
    };
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  /**
   * This store starts empty in every process: rebuild this month's counters from the ledger and the
   * open requests, before the first admission is checked against them.
   */
  async recover(ledger: Pick<RequestStore, "quotaReplay">, now: Date = new Date(this.clock())): Promise<{ settled: number; open: number }> {
    return replayQuota(this, await ledger.quotaReplay(now.toISOString().slice(0, 7)));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.windows.clear();
    this.reservations.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("MemoryQuotaStore is closed");
  }

  private liveCounters(key: string): Counters | undefined {
    const c = this.windows.get(key);
    if (c && c.expiresAt <= this.clock()) {
      this.windows.delete(key);
      return undefined;
    }
    return c;
  }

  private liveReservation(userId: string, requestId: string): Reservation | undefined {
    const key = reservationKey(userId, requestId);
    const r = this.reservations.get(key);
    if (r && r.expiresAt <= this.clock()) {
      this.reservations.delete(key);
      return undefined;
    }
    return r;
  }

  private upsertCounters(key: string, existing: Counters | undefined, expireAtSeconds: number): Counters {
    if (existing) return existing;
    const created: Counters = { requests: 0, used: 0, reserved: 0, expiresAt: expireAtSeconds * 1000 };
    this.windows.set(key, created);
    return created;
  }

  /** The counters of the windows a reservation was made in (recreated if they expired meanwhile). */
  /**
   * Settle and release share this, as settle.lua and release.lua do: an open reservation gives its
   * tokens back in the day and month it was made in, `apply` does the rest, and it closes exactly once.
   */
  private closeReservation<S extends "settled" | "released">(
    userId: string,
    requestId: string,
    closeAs: S,
    apply: (counters: Counters) => void,
  ): S | "already_settled" | "already_released" | "unknown_reservation" {
    const r = this.liveReservation(userId, requestId);
    if (!r) return "unknown_reservation";
    if (r.state === "settled") return "already_settled";
    if (r.state === "released") return "already_released";
    const { d, m } = this.countersOf(userId, r);
    for (const counters of [d, m]) {
      counters.reserved = Math.max(0, counters.reserved - r.tokens);
      apply(counters);
    }
    r.state = closeAs;
    this.dropIfExpired(userId, r);
    return closeAs;
  }

  private countersOf(userId: string, r: Reservation): { d: Counters; m: Counters } {
    const dayKey = windowKey(userId, "d", r.day);
    const monthKey = windowKey(userId, "m", r.month);
    return {
      d: this.upsertCounters(dayKey, this.liveCounters(dayKey), dayKeyExpireAt(r.day)),
      m: this.upsertCounters(monthKey, this.liveCounters(monthKey), monthKeyExpireAt(r.month)),
    };
  }

  /** Like Redis EXPIREAT with a past time: counters recreated for a long-gone window vanish at once. */
  private dropIfExpired(userId: string, r: Reservation): void {
    this.liveCounters(windowKey(userId, "d", r.day));
    this.liveCounters(windowKey(userId, "m", r.month));
  }

  private maybeSweep(): void {
    const now = this.clock();
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return;
    this.lastSweep = now;
    for (const [key, c] of this.windows) if (c.expiresAt <= now) this.windows.delete(key);
    for (const [key, r] of this.reservations) if (r.expiresAt <= now) this.reservations.delete(key);
  }
}

function windowKey(userId: string, kind: "d" | "m", window: string): string {
  return `${userId}\u0000${kind}\u0000${window}`;
}

function reservationKey(userId: string, requestId: string): string {
  return `${userId}\u0000r\u0000${requestId}`;
}

function toUsage(c: Counters | undefined): WindowUsage {
  return c ? { requests: c.requests, tokensUsed: c.used, tokensReserved: c.reserved } : { requests: 0, tokensUsed: 0, tokensReserved: 0 };
}

/**
 * Quota store on Redis: one atomic Lua script per operation (lua/reserve.lua, settle.lua,
 * release.lua). Every key a script touches carries the hash tag `{<userId>}`, so the scripts run
 * unchanged on Redis Cluster.
 *
 * Key layout (prefix = keyPrefix option, default ""):
 *   <prefix>quota:{<userId>}:d:<YYYY-MM-DD>   hash requests, used, reserved   EXPIREAT day end + 2 days
 *   <prefix>quota:{<userId>}:m:<YYYY-MM>      hash requests, used, reserved   EXPIREAT month end + 40 days
 *   <prefix>quota:{<userId>}:r:<requestId>    hash tokens, day, month, state (reserved|settled|released),
 *                                             actual (once settled)           EXPIREAT day end + 40 days
 * Windows are calendar UTC day and month; expiry instants come from the window, never a rolling TTL.
 *
 *   <prefix>quota:{<userId>}:rebuilt          string, no expiry: the counters match the ledger
 *
 * Settle and release first read the reservation's (immutable) day and month, then run their script
 * with all three keys declared; the script re-checks the window, so the read adds no race.
 *
 * Given a `ledger`, losing Redis's data costs no quota: a user without the `rebuilt` marker (Redis
 * restarted empty, or was replaced) is refused by the reserve script until their counters are
 * rebuilt from the ledger and the open requests (lua/rebuild.lua, which writes them only if no other
 * caller did first). Concurrent callers in one process share one rebuild.
 *
 * The Lua files are read next to this module (import.meta.url): a build must copy lua/*.lua along.
 */
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type {
  QuotaLedger,
  QuotaSnapshot,
  QuotaStore,
  QuotaUsage,
  QuotaWindow,
  ReleaseResult,
  ReserveInput,
  ReserveResult,
  SettleResult,
  WindowUsage,
  QuotaLimitName,
} from "../../domain/ports.js";
import {
  assertCount,
  assertLimits,
  assertQuotaIds,
  dailyResetAt,
  dayKeyExpireAt,
  monthKeyExpireAt,
  monthlyResetAt,
  quotaWindow,
  reservationExpireAt,
  retryAfterSeconds,
} from "../../domain/quota-windows.js";
import { BatchLoader } from "../../domain/batching.js";

export interface RedisQuotaStoreOptions {
  /** ioredis client; owned by the caller (not closed by close()) unless ownsConnection is true. */
  redis: Redis;
  /** Prepended to every key, e.g. "mli:" (default ""). */
  keyPrefix?: string;
  /** close() quits the client when true (default false). */
  ownsConnection?: boolean;
  /** The durable record the counters are rebuilt from when Redis lost them; without it Redis is the only record. */
  ledger?: QuotaLedger;
}

type ScriptArg = string | number;
interface QuotaCommands {
  mlQuotaReserve(...args: ScriptArg[]): Promise<unknown>;
  mlQuotaSettle(...args: ScriptArg[]): Promise<unknown>;
  mlQuotaRelease(...args: ScriptArg[]): Promise<unknown>;
  /** Variable key count: the first argument is the number of keys. */
  mlQuotaRebuild(...args: ScriptArg[]): Promise<unknown>;
}

const LIMIT_NAMES: ReadonlySet<string> = new Set<QuotaLimitName>([
  "daily_requests",
  "daily_tokens",
  "monthly_requests",
  "monthly_tokens",
]);
const SETTLE_RESULTS: ReadonlySet<string> = new Set<SettleResult>([
  "settled",
  "already_settled",
  "already_released",
  "unknown_reservation",
]);
const RELEASE_RESULTS: ReadonlySet<string> = new Set<ReleaseResult>([
  "released",
  "already_settled",
  "already_released",
  "unknown_reservation",
]);
/** A reservation's window never changes, so a mismatch means it expired and was re-made between read and script. */
const MAX_WINDOW_RETRIES = 3;

function loadLua(name: string): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
}

export class RedisQuotaStore implements QuotaStore {
  private readonly redis: Redis;
  private readonly commands: QuotaCommands;
  private readonly prefix: string;
  private readonly ownsConnection: boolean;
  private readonly ledger: QuotaLedger | undefined;
  private readonly rebuilding = new Map<string, Promise<void>>();
  /** Rebuilds of many users at once (Redis came back empty under load) share ledger reads. */
  private readonly snapshots: BatchLoader<string, QuotaSnapshot> | undefined;

  constructor(options: RedisQuotaStoreOptions) {
    this.redis = options.redis;
    this.prefix = options.keyPrefix ?? "";
    this.ownsConnection = options.ownsConnection ?? false;
    this.ledger = options.ledger;
    const ledger = options.ledger;
    this.snapshots =
      ledger &&
      new BatchLoader<string, QuotaSnapshot>(async (keys) => {
        // Keys are "<month> <userId>"; nearly always one month.
        const byMonth = new Map<string, string[]>();
        for (const key of keys) byMonth.set(key.slice(0, 7), [...(byMonth.get(key.slice(0, 7)) ?? []), key.slice(8)]);
        const found = new Map<string, QuotaSnapshot>();
        for (const [month, users] of byMonth) {
          for (const [user, snapshot] of await ledger.snapshots(users, month)) found.set(`${month} ${user}`, snapshot);
        }
        return found;
      });
    this.redis.defineCommand("mlQuotaReserve", { numberOfKeys: 4, lua: loadLua("reserve") });
    this.redis.defineCommand("mlQuotaRebuild", { lua: loadLua("rebuild") });
    this.redis.defineCommand("mlQuotaSettle", { numberOfKeys: 3, lua: loadLua("settle") });
    this.redis.defineCommand("mlQuotaRelease", { numberOfKeys: 3, lua: loadLua("release") });
    this.commands = this.redis as unknown as QuotaCommands;
  }

  /** Key names, exposed for tests and operators. */
  keys(userId: string): {
    day: (day: string) => string;
    month: (month: string) => string;
    reservation: (requestId: string) => string;
    rebuilt: string;
  } {
    const base = `${this.prefix}quota:{${userId}}`;
    return {
      day: (day) => `${base}:d:${day}`,
      month: (month) => `${base}:m:${month}`,
      reservation: (requestId) => `${base}:r:${requestId}`,
      rebuilt: `${base}:rebuilt`,
    };
  }

  async reserve(input: ReserveInput): Promise<ReserveResult> {
    assertQuotaIds(input.userId, input.requestId);
    assertCount("tokens", input.tokens);
    assertLimits(input.limits);
    const window = quotaWindow(input.now);
    const k = this.keys(input.userId);
    const l = input.limits;
    const run = () =>
      this.commands.mlQuotaReserve(
        k.day(window.day),
        k.month(window.month),
        k.reservation(input.requestId),
        k.rebuilt,
        input.tokens,
        l.dailyRequests ?? -1,
        l.dailyTokens ?? -1,
        l.monthlyRequests ?? -1,
        l.monthlyTokens ?? -1,
        window.day,
        window.month,
        dayKeyExpireAt(window.day),
        monthKeyExpireAt(window.month),
        reservationExpireAt(window),
        this.ledger ? 1 : 0,
      );
    let reply = await run();
    if (Array.isArray(reply) && Number(reply[0]) === 2) {
      await this.rebuild(input.userId, window.month);
      reply = await run();
    }
    if (!Array.isArray(reply) || (reply.length !== 4 && reply.length !== 8)) throw new Error(`unexpected reserve reply: ${JSON.stringify(reply)}`);
    const [status, a, b, c, ...counts] = reply as unknown[];
    if (Number(status) === 1) {
      const [dailyRequests, dailyTokens, monthlyRequests, monthlyTokens] = counts.map(Number);
      return {
        ok: true,
        window: { day: String(b), month: String(c) },
        duplicate: Number(a) === 1,
        ...(counts.length === 4 ? { counts: { dailyRequests: dailyRequests!, dailyTokens: dailyTokens!, monthlyRequests: monthlyRequests!, monthlyTokens: monthlyTokens! } } : {}),
      };
    }
    const limit = String(a);
    if (!LIMIT_NAMES.has(limit)) throw new Error(`unexpected reserve reply: ${JSON.stringify(reply)}`);
    const name = limit as QuotaLimitName;
    return {
      ok: false,
      limit: name,
      current: Number(b),
      limitValue: Number(c),
      retryAfterSeconds: retryAfterSeconds(name, input.now),
    };
  }

  async settle(input: { userId: string; requestId: string; actualTokens: number; window?: QuotaWindow }): Promise<SettleResult> {
    assertQuotaIds(input.userId, input.requestId);
    assertCount("actualTokens", input.actualTokens);
    const reply = await this.onReservation(input.userId, input.requestId, input.window, (keys, w) =>
      this.commands.mlQuotaSettle(
        ...keys,
        input.actualTokens,
        w.day,
        w.month,
        dayKeyExpireAt(w.day),
        monthKeyExpireAt(w.month),
      ),
    );
    if (!SETTLE_RESULTS.has(reply)) throw new Error(`unexpected settle reply: ${reply}`);
    return reply as SettleResult;
  }

  async release(input: { userId: string; requestId: string; window?: QuotaWindow }): Promise<ReleaseResult> {
    assertQuotaIds(input.userId, input.requestId);
    const reply = await this.onReservation(input.userId, input.requestId, input.window, (keys, w) =>
      this.commands.mlQuotaRelease(...keys, w.day, w.month, dayKeyExpireAt(w.day), monthKeyExpireAt(w.month)),
    );
    if (!RELEASE_RESULTS.has(reply)) throw new Error(`unexpected release reply: ${reply}`);
    return reply as ReleaseResult;
  }

  async usage(userId: string, now: Date): Promise<QuotaUsage> {
    assertQuotaIds(userId);
    const window = quotaWindow(now);
    const k = this.keys(userId);
    if (this.ledger && (await this.redis.exists(k.rebuilt)) === 0) await this.rebuild(userId, window.month);
    const [day, month] = await Promise.all([
      this.redis.hmget(k.day(window.day), "requests", "used", "reserved"),
      this.redis.hmget(k.month(window.month), "requests", "used", "reserved"),
    ]);
    return {
      window,
      daily: toUsage(day),
      monthly: toUsage(month),
      dailyResetAt: dailyResetAt(now),
      monthlyResetAt: monthlyResetAt(now),
    };
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.redis.quit();
  }

  /**
   * Reads the reservation's window (immutable once written), then runs `script` with the
   * reservation, day and month keys. The script re-checks the window and answers window_mismatch
   * if the record changed in between (expired and re-made); then we read again.
   */
  /**
   * Runs a settle or release script on the reservation's windows: first on `hint` when the caller
   * knows them (one round trip; the script answers window_mismatch or unknown_reservation if they
   * are not the reservation's), else, or then, on the windows read from the reservation.
   */
  private async onReservation(
    userId: string,
    requestId: string,
    hint: QuotaWindow | undefined,
    script: (keys: [string, string, string], window: QuotaWindow) => Promise<unknown>,
  ): Promise<string> {
    const k = this.keys(userId);
    const reservationKey = k.reservation(requestId);
    if (hint) {
      const reply = String(await script([reservationKey, k.day(hint.day), k.month(hint.month)], hint));
      if (reply !== "window_mismatch" && reply !== "unknown_reservation") return reply;
    }
    for (let attempt = 0; attempt < MAX_WINDOW_RETRIES; attempt++) {
      const [day, month] = await this.redis.hmget(reservationKey, "day", "month");
      if (!day || !month) {
        // Unknown here, but Redis may have lost it: rebuilt from the ledger, an open request has it again.
        if (attempt > 0 || !this.ledger || (await this.redis.exists(k.rebuilt)) === 1) return "unknown_reservation";
        await this.rebuild(userId, quotaWindow(new Date()).month);
        continue;
      }
      const reply = String(await script([reservationKey, k.day(day), k.month(month)], { day, month }));
      if (reply !== "window_mismatch") return reply;
    }
    throw new Error(`quota reservation ${reservationKey} kept changing window`);
  }

  /** Rebuilds one user's counters of `month` from the ledger; concurrent callers share one rebuild. */
  private rebuild(userId: string, month: string): Promise<void> {
    const pending = this.rebuilding.get(userId);
    if (pending) return pending;
    const snapshots = this.snapshots as BatchLoader<string, QuotaSnapshot>;
    const work = (async () => {
      const snapshot = (await snapshots.load(`${month} ${userId}`)) ?? { settledDays: [], open: [] };
      await this.commands.mlQuotaRebuild(...rebuildArguments(this.keys(userId), snapshot));
    })().finally(() => this.rebuilding.delete(userId));
    this.rebuilding.set(userId, work);
    return work;
  }
}

/** The keys and arguments of lua/rebuild.lua for one user's snapshot. */
function rebuildArguments(k: ReturnType<RedisQuotaStore["keys"]>, snapshot: QuotaSnapshot): ScriptArg[] {
  const windows = new Map<string, { requests: number; used: number; reserved: number; expireAt: number }>();
  const add = (key: string, expireAt: number, requests: number, used: number, reserved: number) => {
    const w = windows.get(key) ?? { requests: 0, used: 0, reserved: 0, expireAt };
    w.requests += requests;
    w.used += used;
    w.reserved += reserved;
    windows.set(key, w);
  };
  for (const day of snapshot.settledDays) {
    const month = day.day.slice(0, 7);
    add(k.day(day.day), dayKeyExpireAt(day.day), day.requests, day.tokens, 0);
    add(k.month(month), monthKeyExpireAt(month), day.requests, day.tokens, 0);
  }
  for (const open of snapshot.open) {
    const month = open.day.slice(0, 7);
    add(k.day(open.day), dayKeyExpireAt(open.day), 1, 0, open.tokens);
    add(k.month(month), monthKeyExpireAt(month), 1, 0, open.tokens);
  }
  const keys: string[] = [k.rebuilt, ...windows.keys(), ...snapshot.open.map((o) => k.reservation(o.requestId))];
  const args: ScriptArg[] = [windows.size];
  for (const w of windows.values()) args.push(w.requests, w.used, w.reserved, w.expireAt);
  for (const o of snapshot.open) {
    args.push(o.tokens, o.day, o.day.slice(0, 7), reservationExpireAt({ day: o.day, month: o.day.slice(0, 7) }));
  }
  return [keys.length, ...keys, ...args];
}

function toUsage(fields: (string | null)[]): WindowUsage {
  const n = (v: string | null | undefined): number => (v ? Number(v) : 0);
  return { requests: n(fields[0]), tokensUsed: n(fields[1]), tokensReserved: n(fields[2]) };
}

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Authenticator } from "./authenticator.js";
import { generateApiKey } from "../domain/api-keys.js";
import { AppError } from "../errors.js";
import type { UserRecord, UserStore } from "../domain/ports.js";

const TIER = { name: "t", limits: { dailyRequests: 5, dailyTokens: null, monthlyRequests: null, monthlyTokens: null } };

/** Only the one read the authenticator makes; counts reads and can hold them open. */
function keyTable() {
  const rows = new Map<string, UserRecord>();
  let reads = 0;
  let gate: Promise<void> | undefined;
  const store = {
    async findByKeyHash(hash: string) {
      reads++;
      await gate;
      return rows.get(hash) ?? null;
    },
  } as unknown as UserStore;
  return {
    store,
    rows,
    reads: () => reads,
    hold(): () => void {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

const anonymousOn = { enabled: true, dailyRequests: 10, dailyTokens: 100 };

/** Runs `body` with Date.now under its control. */
async function withClock(body: (advance: (ms: number) => void) => Promise<void>): Promise<void> {
  let clock = 1_000;
  const realNow = Date.now;
  Date.now = () => clock;
  try {
    await body((ms) => (clock += ms));
  } finally {
    Date.now = realNow;
  }
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AppError);
    return error;
  }
  assert.fail("expected a rejection");
}

describe("Authenticator", () => {
  it("a malformed Authorization header is 401 naming the problem, also with anonymous access on", async () => {
    const table = keyTable();
    const auth = new Authenticator({ users: table.store, anonymous: anonymousOn });
    for (const header of ["Basic dXNlcjpwYXNz", "Token abc", "mli_bare_key", "Bearer a b", "Bearer"]) {
      const error = await rejection(auth.authenticate(header));
      assert.equal(error.code, "unauthorized", header);
      assert.match(error.message, /malformed Authorization header/, header);
    }
    assert.equal((await auth.authenticate(undefined)).userId, "anonymous");
    assert.equal(table.reads(), 0);
  });

  it("a revoked key stops working once the cache time has passed, and not before a fresh read", async () => {
    const table = keyTable();
    const key = generateApiKey();
    table.rows.set(key.keyHash, { userId: "u1", tier: TIER, disabled: false });
    await withClock(async (advance) => {
      const auth = new Authenticator({ users: table.store, anonymous: anonymousOn, cacheTtlMs: 500 });
      assert.equal((await auth.authenticate(`Bearer ${key.key}`)).userId, "u1");
      table.rows.delete(key.keyHash); // revoked
      advance(500);
      assert.equal((await auth.authenticate(`Bearer ${key.key}`)).userId, "u1", "still within the cache time");
      assert.equal(table.reads(), 1);
      advance(1);
      assert.equal((await rejection(auth.authenticate(`Bearer ${key.key}`))).code, "unauthorized");
      assert.equal(table.reads(), 2);
    });
  });

  it("by default a key is trusted for at most a second", async () => {
    const table = keyTable();
    const key = generateApiKey();
    table.rows.set(key.keyHash, { userId: "u1", tier: TIER, disabled: false });
    await withClock(async (advance) => {
      const auth = new Authenticator({ users: table.store, anonymous: anonymousOn });
      await auth.authenticate(`Bearer ${key.key}`);
      table.rows.delete(key.keyHash);
      advance(1_001);
      assert.equal((await rejection(auth.authenticate(`Bearer ${key.key}`))).code, "unauthorized");
    });
  });

  it("concurrent lookups of one key share a single read", async () => {
    const table = keyTable();
    const key = generateApiKey();
    table.rows.set(key.keyHash, { userId: "u1", tier: TIER, disabled: false });
    const auth = new Authenticator({ users: table.store, anonymous: anonymousOn, cacheTtlMs: 0 });
    const release = table.hold();
    const pending = Array.from({ length: 20 }, () => auth.authenticate(`Bearer ${key.key}`));
    release();
    const users = await Promise.all(pending);
    assert.deepEqual(new Set(users.map((u) => u.userId)), new Set(["u1"]));
    assert.equal(table.reads(), 1);
  });

  it("a disabled user is 403; a database failure is 503 without internals", async () => {
    const table = keyTable();
    const key = generateApiKey();
    table.rows.set(key.keyHash, { userId: "u1", tier: TIER, disabled: true });
    const auth = new Authenticator({ users: table.store, anonymous: anonymousOn, cacheTtlMs: 0 });
    assert.equal((await rejection(auth.authenticate(`Bearer ${key.key}`))).code, "forbidden");
    const broken = new Authenticator({
      users: { findByKeyHash: async () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:5432")) } as unknown as UserStore,
      anonymous: anonymousOn,
    });
    const error = await rejection(broken.authenticate(`Bearer ${key.key}`));
    assert.equal(error.code, "service_unavailable");
    assert.doesNotMatch(error.message, /127\.0\.0\.1|ECONNREFUSED/);
  });
});

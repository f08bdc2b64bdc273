/**
 * One contract for every RunStates adapter: Redis (real Redis at TEST_URLS.redis, unique key prefix
 * per run) and in-process memory. Each suite runs two instances standing for two replicas (a worker
 * and an API, or two workers) over one shared store.
 */
import { sleep, waitFor } from "../support/wait.js";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { RunStates } from "../../src/domain/ports.js";
import { MemoryRunStateHub, MemoryRunStates } from "../../src/adapters/memory/run-states.js";
import { RedisRunStates } from "../../src/adapters/redis/run-states.js";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";



/** Long enough for a notice that is coming to have arrived (used only to show one did NOT). */
const SETTLE_MS = 150;
/** Shorter than the 24 h default, so the tests see that the option is the one applied. */
const CONTRACT_TTL_MS = 60_000;

interface Rig {
  a: RunStates;
  b: RunStates;
  /** Time to live left on a request's state, or undefined when it has none. */
  remainingMs: (requestId: string) => Promise<number | undefined>;
}

/**
 * Watches for cancels of the given requests only: every watcher hears every cancel, and a notice of
 * an earlier test may still be on its way.
 */
async function watchOnly(runStates: RunStates, requestIds: string[]): Promise<{ got: string[]; off: () => Promise<void> }> {
  const wanted = new Set(requestIds);
  const got: string[] = [];
  const off = await runStates.watchCancels((requestId) => {
    if (wanted.has(requestId)) got.push(requestId);
  });
  return { got, off };
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function runStatesContract(name: string, skip: string | undefined, setup: () => Promise<Rig>): void {
  describe(`RunStates contract: ${name}`, { skip }, () => {
    let rig: Rig;
    let a: RunStates;
    let b: RunStates;
    before(async () => {
      rig = await setup();
      ({ a, b } = rig);
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    it("claimRun on a new request runs it, and a redelivery of a running one runs again", async () => {
      const id = randomUUID();
      assert.equal(await a.claimRun(id), "run");
      assert.equal(await a.claimRun(id), "run", "the same worker's redelivery");
      assert.equal(await b.claimRun(id), "run", "another worker's redelivery after a crash");
    });

    it("a cancel before start wins: before_start, then claimRun says cancelled, a second cancel already_cancelled", async () => {
      const id = randomUUID();
      assert.equal(await a.cancel(id), "before_start");
      assert.equal(await b.claimRun(id), "cancelled");
      assert.equal(await b.claimRun(id), "cancelled", "stays cancelled");
      assert.equal(await b.cancel(id), "already_cancelled");
      assert.equal(await b.claimRun(id), "cancelled");
    });

    it("a cancel of a running request answers running; later claims say cancelled, later cancels already_cancelled", async () => {
      const id = randomUUID();
      assert.equal(await a.claimRun(id), "run");
      assert.equal(await b.cancel(id), "running");
      assert.equal(await a.claimRun(id), "cancelled", "a redelivery of a cancelling request must not run");
      assert.equal(await a.cancel(id), "already_cancelled");
      assert.equal(await b.cancel(id), "already_cancelled");
    });

    it("claim against cancel, 200 pairs at once in random order: exactly one of them wins each", async () => {
      const ids = Array.from({ length: 200 }, () => randomUUID());
      const claims = new Map<string, string>();
      const cancels = new Map<string, string>();
      const { got: noticed, off: unwatch } = await watchOnly(a, ids);
      // Each call on either instance: one connection keeps its calls in order (and pipelines them),
      // so calls spread over both are what makes either order happen on a real server.
      const either = () => (Math.random() < 0.5 ? a : b);
      const calls = shuffle(
        ids.flatMap((id) => {
          const [claimer, canceller] = [either(), either()];
          return [async () => claims.set(id, await claimer.claimRun(id)), async () => cancels.set(id, await canceller.cancel(id))];
        }),
      );
      await Promise.all(calls.map((call) => call()));
      let runFirst = 0;
      let cancelFirst = 0;
      for (const id of ids) {
        const pair = `${claims.get(id)}/${cancels.get(id)}`;
        if (pair === "run/running") runFirst++;
        else if (pair === "cancelled/before_start") cancelFirst++;
        else assert.fail(`request ${id}: claim and cancel answered ${pair}`);
      }
      // Random order makes each outcome about as likely as the other; none seen means no race was run.
      assert.ok(runFirst > 0 && cancelFirst > 0, `both orders happened (run first ${runFirst}, cancel first ${cancelFirst})`);
      await waitFor("a notice of every running cancel", () => noticed.length >= runFirst);
      await sleep(SETTLE_MS);
      const expected = ids.filter((id) => cancels.get(id) === "running").sort();
      assert.deepEqual([...noticed].sort(), expected, "noticed exactly the cancels that found the request running");
      await unwatch();
    });

    it("a cancel of a running request reaches every watcher, on the other instance and on its own", async () => {
      const id = randomUUID();
      const watches = await Promise.all([watchOnly(a, [id]), watchOnly(b, [id]), watchOnly(b, [id])]);
      assert.equal(await a.claimRun(id), "run");
      assert.equal(await b.cancel(id), "running");
      await waitFor("the notice on every watcher", () => watches.every((w) => w.got.length === 1));
      await sleep(SETTLE_MS);
      assert.deepEqual(
        watches.map((w) => w.got),
        [[id], [id], [id]],
      );
      await Promise.all(watches.map((w) => w.off()));
    });

    it("no notice is sent for a cancel before start or a repeated cancel", async () => {
      const [beforeStart, running, marker] = [randomUUID(), randomUUID(), randomUUID()];
      const { got, off } = await watchOnly(a, [beforeStart, running, marker]);
      assert.equal(await b.cancel(beforeStart), "before_start");
      assert.equal(await b.cancel(beforeStart), "already_cancelled");
      assert.equal(await b.claimRun(running), "run");
      assert.equal(await b.cancel(running), "running");
      assert.equal(await b.cancel(running), "already_cancelled");
      // Notices arrive in order: once the marker's is here, any notice of the cancels above would be too.
      assert.equal(await b.claimRun(marker), "run");
      assert.equal(await b.cancel(marker), "running");
      await waitFor("the marker's notice", () => got.includes(marker));
      await sleep(SETTLE_MS);
      assert.deepEqual(got, [running, marker]);
      await off();
    });

    it("unwatching stops delivery to that watcher only, and is idempotent", async () => {
      const [first, second, third] = [randomUUID(), randomUUID(), randomUUID()];
      const watch1 = await watchOnly(b, [first, second, third]);
      const watch2 = await watchOnly(b, [first, second, third]);
      await a.claimRun(first);
      await a.cancel(first);
      await waitFor("the first notice on both", () => watch1.got.length === 1 && watch2.got.length === 1);
      await watch1.off();
      await watch1.off();
      await a.claimRun(second);
      await a.cancel(second);
      await waitFor("the second notice on the watcher still watching", () => watch2.got.length === 2);
      await watch2.off();
      await a.claimRun(third);
      await a.cancel(third);
      await sleep(SETTLE_MS);
      assert.deepEqual(watch1.got, [first]);
      assert.deepEqual(watch2.got, [first, second]);
    });

    it("a watcher that throws does not stop the others", async () => {
      const id = randomUUID();
      const offBad = await b.watchCancels(() => {
        throw new Error("watcher failed");
      });
      const good = await watchOnly(b, [id]);
      await a.claimRun(id);
      await a.cancel(id);
      await waitFor("the notice on the good watcher", () => good.got.length === 1);
      await Promise.all([offBad(), good.off()]);
    });

    it("every write sets the state's time to live, at most ttlMs", async () => {
      const claimed = randomUUID();
      const cancelled = randomUUID();
      const cancelling = randomUUID();
      assert.equal(await rig.remainingMs(claimed), undefined, "no state before any write");
      await a.claimRun(claimed);
      await a.cancel(cancelled);
      await a.claimRun(cancelling);
      await a.cancel(cancelling);
      for (const id of [claimed, cancelled, cancelling]) {
        const left = await rig.remainingMs(id);
        assert.ok(left !== undefined && left > 0 && left <= CONTRACT_TTL_MS, `TTL of ${id}: ${left}`);
      }
    });

    it("rejects request ids that cannot be one", async () => {
      for (const bad of ["", "{tag}", "has space", "x".repeat(257)]) {
        await assert.rejects(a.claimRun(bad), RangeError, `claimRun(${JSON.stringify(bad)})`);
        await assert.rejects(a.cancel(bad), RangeError, `cancel(${JSON.stringify(bad)})`);
      }
    });
  });
}

// ------------------------------------------------------------------ memory

runStatesContract("memory", undefined, async () => {
  const hub = new MemoryRunStateHub();
  const a = new MemoryRunStates({ hub, ttlMs: CONTRACT_TTL_MS });
  const b = new MemoryRunStates({ hub, ttlMs: CONTRACT_TTL_MS });
  return { a, b, remainingMs: async (id) => hub.remainingMs(id) };
});

describe("MemoryRunStates specifics", () => {
  it("a state expires ttlMs after its last change, on the hub's clock, and expired states are swept", async () => {
    const time = { now: 1_000_000 };
    const hub = new MemoryRunStateHub({ clock: () => time.now });
    const runStates = new MemoryRunStates({ hub, ttlMs: 1000 });
    const id = randomUUID();
    assert.equal(await runStates.cancel(id), "before_start");
    time.now += 999;
    assert.equal(await runStates.claimRun(id), "cancelled", "still cancelled 1 ms before expiry");
    time.now += 1;
    assert.equal(await runStates.claimRun(id), "run", "expired: nothing is known of it any more");
    for (let i = 0; i < 2000; i++) await runStates.claimRun(randomUUID());
    time.now += 1000;
    for (let i = 0; i < 2100; i++) await runStates.claimRun(randomUUID());
    assert.ok(hub.size <= 2100, `expired states were swept (${hub.size} held)`);
    await runStates.close();
  });

  it("notices come on a later tick, never inside cancel", async () => {
    const runStates = new MemoryRunStates();
    const got: string[] = [];
    await runStates.watchCancels((requestId) => got.push(requestId));
    const id = randomUUID();
    await runStates.claimRun(id);
    assert.equal(await runStates.cancel(id), "running");
    assert.deepEqual(got, []);
    await waitFor("the notice", () => got.length === 1);
    await runStates.close();
    assert.equal(runStates.hub.watchers, 0, "close removes the instance's watchers");
    await assert.rejects(runStates.claimRun(randomUUID()), /closed/);
  });
});

// ------------------------------------------------------------------ Redis

const redisSkip = await requireServices("redis");
const prefix = `${uniqueName("rsc")}:`;
let rawClient: Redis | undefined;

function raw(): Redis {
  rawClient ??= new Redis(TEST_URLS.redis, { maxRetriesPerRequest: 2 });
  return rawClient;
}

after(async () => {
  if (!rawClient) return;
  let cursor = "0";
  do {
    const [next, keys] = await rawClient.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await rawClient.del(...keys);
  } while (cursor !== "0");
  await rawClient.quit();
});

async function redisRemainingMs(runStates: RedisRunStates, requestId: string): Promise<number | undefined> {
  const left = await raw().pttl(runStates.stateKey(requestId));
  assert.notEqual(left, -1, "a state key without a TTL");
  return left === -2 ? undefined : left;
}

runStatesContract("redis", redisSkip, async () => {
  const options = { url: TEST_URLS.redis, keyPrefix: prefix, ttlMs: CONTRACT_TTL_MS };
  const [a, b] = await Promise.all([RedisRunStates.create(options), RedisRunStates.create(options)]);
  return { a, b, remainingMs: (id) => redisRemainingMs(a, id) };
});

describe("RedisRunStates specifics", { skip: redisSkip }, () => {
  it("keeps a state under its key with the default 24 h TTL, and lets it expire", async () => {
    const runStates = await RedisRunStates.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const shortLived = await RedisRunStates.create({ url: TEST_URLS.redis, keyPrefix: prefix, ttlMs: 100 });
    try {
      const id = randomUUID();
      assert.equal(runStates.stateKey(id), `${prefix}run:{${id}}`);
      assert.equal(runStates.cancelChannel, `${prefix}run-cancels`);
      await runStates.claimRun(id);
      assert.equal(await raw().get(runStates.stateKey(id)), "running");
      const left = await redisRemainingMs(runStates, id);
      assert.ok(left !== undefined && left > 23 * 3600_000 && left <= 24 * 3600_000, `default TTL: ${left}`);
      const brief = randomUUID();
      assert.equal(await shortLived.cancel(brief), "before_start");
      await sleep(250);
      assert.equal(await raw().exists(shortLived.stateKey(brief)), 0);
      assert.equal(await shortLived.claimRun(brief), "run", "nothing is known of an expired state");
    } finally {
      await Promise.all([runStates.close(), shortLived.close()]);
    }
  });

  it("drops notices that are not a request id, and keeps delivering valid ones", async () => {
    const runStates = await RedisRunStates.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    try {
      const got: string[] = [];
      const off = await runStates.watchCancels((requestId) => got.push(requestId));
      const id = randomUUID();
      for (const bad of ["", "has space", "{tag}", "x".repeat(300), "line\nbreak"]) await raw().publish(runStates.cancelChannel, bad);
      await raw().publish(runStates.cancelChannel, id);
      await waitFor("the valid notice", () => got.length === 1);
      await sleep(SETTLE_MS);
      assert.deepEqual(got, [id]);
      await off();
    } finally {
      await runStates.close();
    }
  });

  it("many local watchers share one SUBSCRIBE, and the last unwatch ends it", async () => {
    const runStates = await RedisRunStates.create({ url: TEST_URLS.redis, keyPrefix: `${uniqueName("rsc_sub")}:` });
    try {
      const subscribers = async () => {
        const [, count] = (await raw().call("PUBSUB", "NUMSUB", runStates.cancelChannel)) as [string, number];
        return Number(count);
      };
      const offs = await Promise.all(Array.from({ length: 5 }, () => runStates.watchCancels(() => undefined)));
      assert.equal(await subscribers(), 1);
      await Promise.all(offs.slice(1).map((off) => off()));
      assert.equal(await subscribers(), 1, "one watcher left");
      await offs[0]!();
      assert.equal(await subscribers(), 0);
    } finally {
      await runStates.close();
    }
  });

  it("an unknown value under a state key is an error, not a guess", async () => {
    const runStates = await RedisRunStates.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    try {
      const id = randomUUID();
      await raw().set(runStates.stateKey(id), "bogus", "PX", 60_000);
      await assert.rejects(runStates.claimRun(id), /unknown run state/);
      await assert.rejects(runStates.cancel(id), /unknown run state/);
    } finally {
      await runStates.close();
    }
  });
});

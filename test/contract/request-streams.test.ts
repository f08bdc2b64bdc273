/**
 * One contract for every RequestStreams adapter: Redis Streams and in-process memory. Each test
 * runs two instances standing for two replicas over one store; a rig per adapter supplies what the
 * contract cannot do through the port (time passing, a raw live message, a stream's TTL).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { RequestStreams, StreamEvent } from "../../src/domain/ports.js";
import { MemoryRequestStreams, MemoryStreamHub } from "../../src/adapters/memory/request-streams.js";
import { RedisRequestStreams } from "../../src/adapters/redis/request-streams.js";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";
import { startTcpProxy } from "../support/tcp-proxy.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Long enough for a message that is coming to have arrived (used only to show one did NOT). */
const SETTLE_MS = 150;

interface Rig {
  /** Two instances over one store, standing for two replicas. */
  replicas(options?: { bound?: number; ttlMs?: number }): Promise<[RequestStreams, RequestStreams]>;
  /** Sends a payload on a request's live channel as it is, as a broken or foreign writer would. */
  sendRaw(requestId: string, payload: string): Promise<void>;
  /** Milliseconds the request's stream has left (PTTL), null when there is none. */
  ttlLeft(requestId: string): Promise<number | null>;
  /** Lets a little stream time pass: the fake clock's, or real time. */
  tick(): Promise<void>;
  close(): Promise<void>;
}

const delta = (seq: number, text = `t${seq}`): StreamEvent => ({ seq, type: "delta", text });
const final = (seq: number): StreamEvent => ({
  seq,
  type: "final",
  status: "completed",
  usage: { prompt_tokens: 3, completion_tokens: seq - 1, total_tokens: seq + 2 },
  finishReason: "stop",
  error: null,
});
const deltas = (from: number, to: number): StreamEvent[] => Array.from({ length: to - from + 1 }, (_, i) => delta(from + i));
const seqs = (events: StreamEvent[]) => events.map((e) => e.seq);

async function until(what: string, condition: () => boolean | Promise<boolean>, tick: () => Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}
const realTick = () => sleep(5);

function requestStreamsContract(name: string, skip: string | undefined, makeRig: () => Promise<Rig>): void {
  describe(`RequestStreams contract: ${name}`, { skip, timeout: 20_000 }, () => {
    let rig: Rig;
    let a: RequestStreams;
    let b: RequestStreams;
    const setup = async (options?: { bound?: number; ttlMs?: number }) => {
      rig ??= await makeRig();
      [a, b] = await rig.replicas(options);
    };
    after(async () => rig?.close());

    it("what one replica appends, the other reads back whole and in order", async () => {
      await setup();
      const id = randomUUID();
      await a.append(id, [delta(1, "Hel"), delta(2, "lo")]);
      await a.append(id, [final(3)]);
      assert.deepEqual(await b.read(id, 0, 100), [delta(1, "Hel"), delta(2, "lo"), final(3)]);
      assert.deepEqual(await b.read(randomUUID(), 0, 100), [], "an unknown request has an empty stream");
      await a.append(id, []); // nothing to do
      assert.equal((await b.read(id, 0, 100)).length, 3);
    });

    it("read(after) starts right after that seq, and returns at most limit events", async () => {
      await setup();
      const id = randomUUID();
      await a.append(id, deltas(1, 10));
      assert.deepEqual(seqs(await b.read(id, 7, 100)), [8, 9, 10]);
      assert.deepEqual(seqs(await b.read(id, 10, 100)), []);
      assert.deepEqual(seqs(await b.read(id, 0, 3)), [1, 2, 3]);
      assert.deepEqual(seqs(await b.read(id, 3, 3)), [4, 5, 6]);
      assert.deepEqual(seqs(await b.read(id, 9, 3)), [10]);
      await assert.rejects(b.read(id, -1, 3), RangeError);
    });

    it("a stream keeps only its newest `bound` events", async () => {
      await setup({ bound: 5 });
      const id = randomUUID();
      await a.append(id, deltas(1, 3));
      await a.append(id, deltas(4, 8));
      assert.deepEqual(seqs(await b.read(id, 0, 100)), [4, 5, 6, 7, 8]);
      await a.append(id, [delta(3)]); // below the newest, even though trimmed: still skipped
      assert.deepEqual(seqs(await b.read(id, 0, 100)), [4, 5, 6, 7, 8]);
      await a.append(id, deltas(9, 30)); // one batch longer than the bound
      assert.deepEqual(seqs(await b.read(id, 0, 100)), [26, 27, 28, 29, 30]);
    });

    it("a stream expires `ttlMs` after its last append, and each append renews it", async () => {
      const ttlMs = 400;
      await setup({ ttlMs });
      const id = randomUUID();
      await a.append(id, deltas(1, 2));
      const left = await rig.ttlLeft(id);
      assert.ok(left !== null && left > 0 && left <= ttlMs, `TTL ${left} within (0, ${ttlMs}]`);
      await until("half the TTL gone", async () => ((await rig.ttlLeft(id)) ?? 0) < ttlMs / 2, rig.tick);
      assert.deepEqual(seqs(await b.read(id, 0, 10)), [1, 2], "still there before it expires");
      await a.append(id, [delta(3)]);
      const renewed = await rig.ttlLeft(id);
      assert.ok(renewed !== null && renewed > ttlMs / 2, `renewed TTL ${renewed} above ${ttlMs / 2}`);
      await until("the stream expired", async () => (await rig.ttlLeft(id)) === null, rig.tick);
      assert.deepEqual(await b.read(id, 0, 10), []);
      await a.append(id, [delta(1)]); // a fresh stream: seq 1 is new again
      assert.deepEqual(seqs(await b.read(id, 0, 10)), [1]);
    });

    it("an append retried (wholly or in part) stores and announces each event once", async () => {
      await setup();
      const id = randomUUID();
      const batches: number[][] = [];
      const off = await b.watch(id, (events) => batches.push(seqs(events)));
      await a.append(id, deltas(1, 3));
      await a.append(id, [delta(2), delta(3), delta(4)]);
      await until("two batches", () => batches.length === 2, realTick);
      await a.append(id, deltas(1, 2)); // nothing new: no live message
      await b.append(id, [delta(4), final(5)]); // from the other replica
      await until("the final batch", () => batches.length === 3, realTick);
      await sleep(SETTLE_MS);
      assert.deepEqual(batches, [[1, 2, 3], [4], [5]]);
      assert.deepEqual(seqs(await a.read(id, 0, 100)), [1, 2, 3, 4, 5]);
      await off();
    });

    it("refuses a batch out of seq order or with an invalid event, storing none of it", async () => {
      await setup();
      const id = randomUUID();
      await assert.rejects(a.append(id, [delta(2), delta(1)]), RangeError);
      await assert.rejects(a.append(id, [delta(1), delta(1)]), RangeError);
      await assert.rejects(a.append(id, [delta(1), { seq: 0, type: "delta", text: "x" }]), TypeError);
      await assert.rejects(a.append(id, [delta(1), { seq: 2, type: "delta" } as unknown as StreamEvent]), TypeError);
      assert.deepEqual(await b.read(id, 0, 100), []);
    });

    it("watchers on both replicas hear each append's events as one batch; other requests' are not delivered", async () => {
      await setup();
      const id = randomUUID();
      const onB: StreamEvent[][] = [];
      const onB2: StreamEvent[][] = [];
      const onA: StreamEvent[][] = [];
      const offs = await Promise.all([
        b.watch(id, (events) => onB.push(events)),
        b.watch(id, (events) => onB2.push(events)),
        a.watch(id, (events) => onA.push(events)),
      ]);
      await a.append(randomUUID(), deltas(1, 2)); // another request
      await a.append(id, deltas(1, 2));
      await a.append(id, [final(3)]);
      await until("both batches everywhere", () => onB.length === 2 && onB2.length === 2 && onA.length === 2, realTick);
      assert.deepEqual(onB, [deltas(1, 2), [final(3)]]);
      assert.deepEqual(onB2, onB);
      assert.deepEqual(onA, onB);
      // each watcher has its own copy
      (onB[0]![0] as { text: string }).text = "changed";
      assert.equal((onB2[0]![0] as { text: string }).text, "t1");
      assert.deepEqual(await a.read(id, 0, 1), [delta(1)], "nor does a watcher share the stored event");
      await Promise.all(offs.map((off) => off()));
    });

    it("unwatching stops delivery, while the request's other watchers keep theirs", async () => {
      await setup();
      const id = randomUUID();
      const first: number[] = [];
      const second: number[] = [];
      const offFirst = await b.watch(id, (events) => first.push(...seqs(events)));
      const offSecond = await b.watch(id, (events) => second.push(...seqs(events)));
      await a.append(id, [delta(1)]);
      await until("first batch", () => first.length === 1 && second.length === 1, realTick);
      await offFirst();
      await offFirst(); // idempotent
      await a.append(id, [delta(2)]);
      await until("second watcher still hears", () => second.length === 2, realTick);
      await offSecond();
      await a.append(id, [delta(3)]);
      await sleep(SETTLE_MS);
      assert.deepEqual(first, [1]);
      assert.deepEqual(second, [1, 2]);
    });

    it("drops live payloads that are not valid event batches, and keeps delivering valid ones", async () => {
      await setup();
      const id = randomUUID();
      const got: StreamEvent[][] = [];
      const off = await b.watch(id, (events) => got.push(events));
      await rig.sendRaw(id, "not json");
      await rig.sendRaw(id, JSON.stringify(delta(1))); // an event, not a batch
      await rig.sendRaw(id, JSON.stringify([{ seq: 0, type: "delta", text: "x" }, { seq: 2, type: "bogus" }]));
      await rig.sendRaw(id, JSON.stringify([delta(7), { seq: "8", type: "delta", text: "x" }])); // the valid one stays
      await a.append(id, [delta(1)]);
      await until("the valid batches", () => got.length === 2, realTick);
      await sleep(SETTLE_MS);
      assert.deepEqual(got, [[delta(7)], [delta(1)]]);
      await off();
    });

    it("refuses calls once closed", async () => {
      await setup();
      const [c] = await rig.replicas();
      await c.close();
      await assert.rejects(c.append(randomUUID(), [delta(1)]), /closed/);
      await assert.rejects(c.read(randomUUID(), 0, 1), /closed/);
      await assert.rejects(c.watch(randomUUID(), () => undefined), /closed/);
    });
  });
}

// ------------------------------------------------------------------ memory

requestStreamsContract("memory", undefined, async () => {
  let clock = Date.parse("2026-01-01T00:00:00Z");
  const hub = new MemoryStreamHub({ now: () => clock });
  return {
    async replicas(options) {
      return [new MemoryRequestStreams({ hub, ...options }), new MemoryRequestStreams({ hub, ...options })];
    },
    async sendRaw(requestId, payload) {
      setImmediate(() => hub.emit(requestId, payload));
    },
    async ttlLeft(requestId) {
      return hub.ttlOf(requestId);
    },
    async tick() {
      clock += 10;
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
    async close() {},
  };
});

describe("MemoryRequestStreams specifics", () => {
  it("tells watchers on a later tick, never inside append", async () => {
    const streams = new MemoryRequestStreams();
    const id = randomUUID();
    const got: number[] = [];
    await streams.watch(id, (events) => got.push(...seqs(events)));
    await streams.append(id, [delta(1)]);
    assert.deepEqual(got, []);
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.deepEqual(got, [1]);
    await streams.close();
    assert.equal(streams.hub.watchedRequests, 0, "close removes its watchers");
  });

  it("forgets expired streams nobody reads any more", async () => {
    let clock = 0;
    const streams = new MemoryRequestStreams({ now: () => clock, ttlMs: 100 });
    const old = randomUUID();
    await streams.append(old, [delta(1)]);
    clock += 101;
    await streams.append(randomUUID(), [delta(1)]); // sweeps
    clock -= 101; // back in time: the stream would be alive had it been kept
    assert.equal(streams.hub.ttlOf(old), null);
  });
});

// ------------------------------------------------------------------ Redis

const redisSkip = await requireServices("redis");
const prefix = `${uniqueName("rsc")}:`;

requestStreamsContract("redis", redisSkip, async () => {
  const raw = new Redis(TEST_URLS.redis);
  const opened: RequestStreams[] = [];
  return {
    async replicas(options) {
      const pair = await Promise.all([
        RedisRequestStreams.create({ url: TEST_URLS.redis, keyPrefix: prefix, ...options }),
        RedisRequestStreams.create({ url: TEST_URLS.redis, keyPrefix: prefix, ...options }),
      ]);
      opened.push(...pair);
      return pair;
    },
    async sendRaw(requestId, payload) {
      await raw.publish(`${prefix}stream-live:{${requestId}}`, payload);
    },
    async ttlLeft(requestId) {
      const left = await raw.pttl(`${prefix}stream:{${requestId}}`);
      return left >= 0 ? left : null;
    },
    tick: realTick,
    async close() {
      await Promise.all(opened.map((streams) => streams.close()));
      const keys = await raw.keys(`${prefix}*`);
      if (keys.length > 0) await raw.del(...keys);
      raw.disconnect();
    },
  };
});

describe("RedisRequestStreams specifics", { skip: redisSkip }, () => {
  it("names its key and channel with the request's hash tag, stores ids <seq>-1, and drops invalid entries on read", async () => {
    const streams = await RedisRequestStreams.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const raw = new Redis(TEST_URLS.redis);
    try {
      const id = randomUUID();
      assert.equal(streams.streamKey(id), `${prefix}stream:{${id}}`);
      assert.equal(streams.liveChannel(id), `${prefix}stream-live:{${id}}`);
      await streams.append(id, deltas(1, 2));
      const entries = (await raw.xrange(streams.streamKey(id), "-", "+")) as Array<[string, string[]]>;
      assert.deepEqual(
        entries.map(([entryId, fields]) => [entryId, fields]),
        [
          ["1-1", ["e", JSON.stringify(delta(1))]],
          ["2-1", ["e", JSON.stringify(delta(2))]],
        ],
      );
      await raw.xadd(streams.streamKey(id), "3-1", "e", "not json");
      await raw.xadd(streams.streamKey(id), "4-1", "e", JSON.stringify(delta(5))); // seq and id disagree
      await raw.xadd(streams.streamKey(id), "5-1", "x", JSON.stringify(delta(5))); // no field e
      await raw.xadd(streams.streamKey(id), "6-1", "e", JSON.stringify(delta(6)));
      assert.deepEqual(seqs(await streams.read(id, 0, 100)), [1, 2, 6]);
    } finally {
      raw.disconnect();
      await streams.close();
    }
  });

  it("an append that adds nothing publishes nothing", async () => {
    const streams = await RedisRequestStreams.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const listen = new Redis(TEST_URLS.redis);
    try {
      const id = randomUUID();
      const messages: string[] = [];
      listen.on("message", (_channel: string, message: string) => messages.push(message));
      await listen.subscribe(streams.liveChannel(id));
      await streams.append(id, deltas(1, 2));
      await streams.append(id, deltas(1, 2));
      await streams.append(id, deltas(2, 3));
      await until("two messages", () => messages.length === 2, realTick);
      await sleep(SETTLE_MS);
      assert.deepEqual(messages, [JSON.stringify(deltas(1, 2)), JSON.stringify([delta(3)])]);
    } finally {
      listen.disconnect();
      await streams.close();
    }
  });

  it("local watchers of one request share one SUBSCRIBE, gone with the last of them", async () => {
    const streams = await RedisRequestStreams.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const raw = new Redis(TEST_URLS.redis);
    const subscribers = async (channel: string) => Number(((await raw.call("PUBSUB", "NUMSUB", channel)) as [string, number])[1]);
    try {
      const id = randomUUID();
      const offs = await Promise.all(Array.from({ length: 5 }, () => streams.watch(id, () => undefined)));
      assert.equal(await subscribers(streams.liveChannel(id)), 1);
      await Promise.all(offs.map((off) => off()));
      assert.equal(await subscribers(streams.liveChannel(id)), 0);
    } finally {
      raw.disconnect();
      await streams.close();
    }
  });

  it("fails commands at once, not after a wait, when Redis is gone", async () => {
    const proxy = await startTcpProxy(TEST_URLS.redis);
    const streams = await RedisRequestStreams.create({ url: proxy.url, keyPrefix: prefix });
    try {
      await proxy.close();
      proxy.cut();
      const started = Date.now();
      await assert.rejects(streams.append(randomUUID(), [delta(1)]));
      await assert.rejects(streams.read(randomUUID(), 0, 10));
      await assert.rejects(streams.watch(randomUUID(), () => undefined));
      assert.ok(Date.now() - started < 1000, `failed within ${Date.now() - started} ms`);
    } finally {
      await streams.close();
    }
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { RequestStreams, StreamEvent } from "./ports.js";
import { followStream, StreamGapError } from "./follow-stream.js";
import { MemoryRequestStreams } from "../adapters/memory/request-streams.js";

const delta = (seq: number): StreamEvent => ({ seq, type: "delta", text: `t${seq}` });
const final = (seq: number): StreamEvent => ({ seq, type: "final", status: "completed", usage: null, finishReason: "stop", error: null });
const deltas = (from: number, to: number): StreamEvent[] => Array.from({ length: to - from + 1 }, (_, i) => delta(from + i));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** So that only the catch-up and gap reads can fill in what a test checks (no idle read rescues it). */
const NO_IDLE_READ = 60_000;

async function collect(stream: AsyncIterable<StreamEvent>): Promise<number[]> {
  const got: number[] = [];
  for await (const event of stream) got.push(event.seq);
  return got;
}

/** Memory streams whose live messages can be lost on the way (as pub/sub loses them), counting reads. */
class LossyStreams implements RequestStreams {
  readonly inner = new MemoryRequestStreams();
  /** Returns true for a live batch that should never arrive. */
  lose: (events: StreamEvent[]) => boolean = () => false;
  reads = 0;
  failReads = false;

  append(requestId: string, events: StreamEvent[]): Promise<void> {
    return this.inner.append(requestId, events);
  }
  async read(requestId: string, after: number, limit: number): Promise<StreamEvent[]> {
    this.reads++;
    if (this.failReads) throw new Error("store unreachable");
    return this.inner.read(requestId, after, limit);
  }
  watch(requestId: string, listener: (events: StreamEvent[]) => void): Promise<() => Promise<void>> {
    return this.inner.watch(requestId, (events) => {
      if (!this.lose(events)) listener(events);
    });
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  get watchers(): number {
    return this.inner.hub.watchedRequests;
  }
}

describe("followStream", { timeout: 10_000 }, () => {
  it("resumes from any seq with no gap and no duplicate, while events keep coming, retries and all", async () => {
    for (let after = 0; after <= 12; after++) {
      const streams = new LossyStreams();
      const id = randomUUID();
      await streams.append(id, deltas(1, 12));
      const done = collect(followStream(streams, id, after, { pageSize: 5, idleReadMs: NO_IDLE_READ }));
      // Batches of varied sizes, each retried once in part (the retry overlaps what was stored).
      let seq = 13;
      for (const size of [1, 3, 2, 7, 1, 4]) {
        await streams.append(id, deltas(seq, seq + size - 1));
        await streams.append(id, deltas(Math.max(1, seq - 1), seq + size - 1));
        seq += size;
        await nextTick();
      }
      await streams.append(id, [final(seq)]);
      assert.deepEqual(await done, range(after + 1, seq), `after ${after}`);
      assert.equal(streams.watchers, 0, "stops watching at the end");
    }
  });

  it("ends when the final was appended before it began to watch (the catch-up read has it)", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    await streams.append(id, [...deltas(1, 600), final(601)]);
    const done = collect(followStream(streams, id, 0, { pageSize: 100, idleReadMs: NO_IDLE_READ }));
    assert.deepEqual(await done, range(1, 601));
    assert.equal(streams.watchers, 0);
    assert.deepEqual(await collect(followStream(streams, id, 600, { idleReadMs: NO_IDLE_READ })), [601]);
  });

  it("fills a gap in the live events from the store", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    streams.lose = (events) => events.some((e) => e.seq === 3 || e.seq === 4);
    const follow = followStream(streams, id, 0, { idleReadMs: NO_IDLE_READ });
    const done = collect(follow);
    for (const batch of [[delta(1)], [delta(2)], [delta(3), delta(4)], [delta(5)], [delta(6)], [final(7)]]) {
      await streams.append(id, batch);
      await nextTick();
    }
    assert.deepEqual(await done, range(1, 7));
    assert.equal(follow.stats.reads, 2, "the catch-up read, and one for the gap");
  });

  it("fails with StreamGapError when the store no longer holds the next event", async () => {
    const streams = new MemoryRequestStreams({ bound: 3 });
    const id = randomUUID();
    await streams.append(id, deltas(1, 10));
    await assert.rejects(collect(followStream(streams, id, 2)), (err: unknown) => {
      assert.ok(err instanceof StreamGapError);
      assert.deepEqual([err.expected, err.found], [3, 8]);
      return true;
    });
    assert.equal(streams.hub.watchedRequests, 0, "stops watching when it fails");
    // A live event beyond a gap the store cannot fill either (its stream expired, say).
    const lossy = new LossyStreams();
    lossy.lose = (events) => events[0]?.seq === 1;
    const other = randomUUID();
    const failed = assert.rejects(collect(followStream(lossy, other, 0)), (err: unknown) => {
      assert.ok(err instanceof StreamGapError);
      assert.deepEqual([err.expected, err.found], [2, null]);
      return true;
    });
    await nextTick();
    await lossy.append(other, [delta(1)]);
    lossy.inner.hub.emit(other, JSON.stringify([delta(3)])); // announced, never stored: 2 is nowhere
    await failed;
  });

  it("holds at most bufferLimit live events for a consumer that stalls, and still yields each event once", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    const bufferLimit = 16;
    await streams.append(id, deltas(1, 5));
    const follow = followStream(streams, id, 0, { bufferLimit, pageSize: 32, idleReadMs: NO_IDLE_READ });
    const got: number[] = [];
    for (let i = 0; i < 2; i++) got.push(((await follow.next()).value as StreamEvent).seq);
    // The consumer stalls while 1,000 events come, in batches of 1 to 7.
    let seq = 6;
    while (seq <= 1005) {
      const size = Math.min(1 + (seq % 7), 1006 - seq);
      await streams.append(id, deltas(seq, seq + size - 1));
      seq += size;
      await nextTick();
    }
    await streams.append(id, [final(1006)]);
    await nextTick();
    assert.ok(follow.stats.maxBuffered <= bufferLimit, `buffered ${follow.stats.maxBuffered}`);
    assert.ok(follow.stats.overflows > 0, "it fell behind and dropped its buffer");
    for await (const event of follow) got.push(event.seq);
    assert.deepEqual(got, range(1, 1006));
    assert.ok(follow.stats.maxBuffered <= bufferLimit, `buffered ${follow.stats.maxBuffered}`);
    assert.equal(streams.watchers, 0);
  });

  it("ends without an error when aborted while waiting, and stops watching", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    const abort = new AbortController();
    const done = collect(followStream(streams, id, 0, { signal: abort.signal }));
    await streams.append(id, deltas(1, 2));
    await sleep(10);
    abort.abort();
    assert.deepEqual(await done, [1, 2]);
    assert.equal(streams.watchers, 0);
  });

  it("stops watching at the abort even while the consumer holds an event; an aborted signal watches nothing", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    await streams.append(id, deltas(1, 3));
    const abort = new AbortController();
    const follow = followStream(streams, id, 0, { signal: abort.signal });
    assert.equal((await follow.next()).value?.seq, 1);
    assert.equal(streams.watchers, 1);
    abort.abort();
    await nextTick();
    assert.equal(streams.watchers, 0, "no next() needed");
    assert.equal((await follow.next()).done, true);

    const early = followStream(streams, id, 0, { signal: AbortSignal.abort() });
    assert.deepEqual(await collect(early), []);
    assert.equal(early.stats.reads, 0);
    assert.equal(streams.watchers, 0);
  });

  it("stops watching when the consumer breaks out, and before it yields the final", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    await streams.append(id, deltas(1, 3));
    for await (const event of followStream(streams, id, 0)) {
      assert.equal(streams.watchers, 1);
      if (event.seq === 2) break;
    }
    assert.equal(streams.watchers, 0);

    const follow = followStream(streams, id, 3);
    const first = follow.next();
    await nextTick();
    await streams.append(id, [final(4)]);
    assert.equal((await first).value?.type, "final");
    assert.equal(streams.watchers, 0, "the final in hand, nothing left to watch");
    assert.equal((await follow.next()).done, true);
  });

  it("reads the store when no live event comes for idleReadMs (a lost final ends it late, not never)", async () => {
    const streams = new LossyStreams();
    const id = randomUUID();
    streams.lose = () => true;
    const done = collect(followStream(streams, id, 0, { idleReadMs: 20 }));
    await nextTick();
    await streams.append(id, [delta(1), final(2)]);
    assert.deepEqual(await done, [1, 2]);
  });

  it("passes a failing read on, and stops watching", async () => {
    const streams = new LossyStreams();
    streams.failReads = true;
    await assert.rejects(collect(followStream(streams, randomUUID(), 0)), /store unreachable/);
    assert.equal(streams.watchers, 0);
  });

  it("refuses settings that cannot work", () => {
    const streams = new MemoryRequestStreams();
    assert.throws(() => followStream(streams, "r", -1), RangeError);
    assert.throws(() => followStream(streams, "r", 0, { bufferLimit: 0 }), RangeError);
    assert.throws(() => followStream(streams, "r", 0, { pageSize: 1.5 }), RangeError);
  });
});

/**
 * One contract for every EventBus adapter: Redis pub/sub and in-process memory. Each suite runs two
 * bus instances standing for two API replicas.
 */
import { sleep, waitFor } from "../support/wait.js";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { RequestEvent } from "../../src/domain/contracts.js";
import type { EventBus } from "../../src/domain/ports.js";
import { MemoryEventBus, MemoryEventHub } from "../../src/adapters/memory/event-bus.js";
import { RedisEventBus } from "../../src/adapters/redis/event-bus.js";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";



/** Long enough for a message that is coming to have arrived (used only to show one did NOT). */
const SETTLE_MS = 150;

function event(requestId: string, status: RequestEvent["status"], extra: Record<string, unknown> = {}): RequestEvent {
  return { request_id: requestId, user_id: "user-1", status, final: status === "completed" || status === "failed", ...extra };
}

function eventBusContract(name: string, skip: string | undefined, setup: () => Promise<[EventBus, EventBus]>): void {
  describe(`EventBus contract: ${name}`, { skip }, () => {
    let a: EventBus;
    let b: EventBus;
    before(async () => {
      [a, b] = await setup();
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    it("an event published on one replica reaches subscribers on the other (and on its own)", async () => {
      const id = randomUUID();
      const onB: RequestEvent[] = [];
      const onB2: RequestEvent[] = [];
      const onA: RequestEvent[] = [];
      const offB = await b.subscribe(id, (e) => onB.push(e));
      const offB2 = await b.subscribe(id, (e) => onB2.push(e));
      const offA = await a.subscribe(id, (e) => onA.push(e));
      await a.publish(event(id, "processing"));
      await a.publish(event(id, "completed", { result_text: "hi" }));
      await waitFor("events on both replicas", () => onB.length === 2 && onB2.length === 2 && onA.length === 2);
      assert.deepEqual(
        onB.map((e) => e.status),
        ["processing", "completed"],
      );
      assert.equal(onB[1]?.final, true);
      assert.equal((onB[1] as Record<string, unknown> | undefined)?.result_text, "hi", "extra fields pass through");
      await Promise.all([offA(), offB(), offB2()]);
    });

    it("unsubscribe stops delivery, while other listeners of the same request keep theirs", async () => {
      const id = randomUUID();
      const first: RequestEvent[] = [];
      const second: RequestEvent[] = [];
      const offFirst = await b.subscribe(id, (e) => first.push(e));
      const offSecond = await b.subscribe(id, (e) => second.push(e));
      await a.publish(event(id, "queued"));
      await waitFor("first event", () => first.length === 1 && second.length === 1);
      await offFirst();
      await offFirst(); // idempotent
      await a.publish(event(id, "processing"));
      await waitFor("second listener still subscribed", () => second.length === 2);
      await offSecond();
      await a.publish(event(id, "completed"));
      await sleep(SETTLE_MS);
      assert.equal(first.length, 1);
      assert.equal(second.length, 2);
    });

    it("events for other request ids are not delivered", async () => {
      const mine = randomUUID();
      const other = randomUUID();
      const got: RequestEvent[] = [];
      const off = await b.subscribe(mine, (e) => got.push(e));
      await a.publish(event(other, "completed"));
      await a.publish(event(mine, "processing"));
      await waitFor("own event", () => got.length === 1);
      await sleep(SETTLE_MS);
      assert.deepEqual(
        got.map((e) => e.request_id),
        [mine],
      );
      await off();
    });

    it("a listener that throws does not stop other listeners", async () => {
      const id = randomUUID();
      const got: RequestEvent[] = [];
      const offBad = await b.subscribe(id, () => {
        throw new Error("listener failed");
      });
      const offGood = await b.subscribe(id, (e) => got.push(e));
      await a.publish(event(id, "completed"));
      await waitFor("delivery to the good listener", () => got.length === 1);
      await Promise.all([offBad(), offGood()]);
    });
  });
}

// ------------------------------------------------------------------ memory

eventBusContract("memory", undefined, async () => {
  const hub = new MemoryEventHub();
  return [new MemoryEventBus({ hub }), new MemoryEventBus({ hub })];
});

// ------------------------------------------------------------------ Redis

const redisSkip = await requireServices("redis");
const prefix = `${uniqueName("ebc")}:`;

eventBusContract("redis", redisSkip, async () =>
  Promise.all([RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix }), RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix })]),
);

describe("RedisEventBus specifics", { skip: redisSkip }, () => {
  it("drops messages that are not valid events, and keeps delivering valid ones", async () => {
    const bus = await RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const raw = new Redis(TEST_URLS.redis);
    try {
      const id = randomUUID();
      const got: RequestEvent[] = [];
      const off = await bus.subscribe(id, (e) => got.push(e));
      const channel = bus.channelName(id);
      assert.equal(channel, `${prefix}events:${id}`);
      await raw.publish(channel, "not json");
      await raw.publish(channel, JSON.stringify({ request_id: id, status: "bogus" }));
      await raw.publish(channel, JSON.stringify(event(randomUUID(), "completed"))); // another id on this channel
      await raw.publish(channel, JSON.stringify(event(id, "completed")));
      await waitFor("valid event", () => got.length === 1);
      await sleep(SETTLE_MS);
      assert.equal(got.length, 1);
      assert.equal(got[0]?.status, "completed");
      await off();
      // the last listener gone, the Redis subscription is gone too
      const [, subscribers] = (await raw.call("PUBSUB", "NUMSUB", channel)) as [string, number];
      assert.equal(Number(subscribers), 0);
    } finally {
      raw.disconnect();
      await bus.close();
    }
  });

  it("many local listeners of one request share one Redis subscription", async () => {
    const bus = await RedisEventBus.create({ url: TEST_URLS.redis, keyPrefix: prefix });
    const raw = new Redis(TEST_URLS.redis);
    try {
      const id = randomUUID();
      const offs = await Promise.all(Array.from({ length: 5 }, () => bus.subscribe(id, () => undefined)));
      const [, subscribers] = (await raw.call("PUBSUB", "NUMSUB", bus.channelName(id))) as [string, number];
      assert.equal(Number(subscribers), 1);
      await Promise.all(offs.map((off) => off()));
    } finally {
      raw.disconnect();
      await bus.close();
    }
  });
});

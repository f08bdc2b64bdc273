/**
 * One contract for every MessageQueue adapter: RabbitMQ (real broker) and in-process memory.
 * Each test uses its own queue names; the RabbitMQ ones are deleted afterwards.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect as amqpConnect } from "amqplib";
import type { HandlerVerdict, MessageQueue } from "../../src/domain/ports.js";
import { MemoryMessageQueue } from "../../src/adapters/memory/message-queue.js";
import {
  RabbitMessageQueue,
  delayBucketMs,
  mainQueueArguments,
  retryQueueArguments,
  retryQueueName,
} from "../../src/adapters/rabbitmq/message-queue.js";
import { AppError } from "../../src/errors.js";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";
import { startTcpProxy } from "../support/tcp-proxy.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Rejects instead of hanging when `promise` takes longer than `ms`. */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

interface Harness {
  mq(): MessageQueue;
  /** A fresh queue name, remembered for clean-up (delays: the delayMs values it will be published with). */
  queue(delays?: number[]): string;
}

function messageQueueContract(name: string, skip: string | undefined, setup: () => Promise<{ mq: MessageQueue; cleanup(queues: Map<string, number[]>): Promise<void> }>): Harness {
  let mq: MessageQueue | undefined;
  let cleanup: ((queues: Map<string, number[]>) => Promise<void>) | undefined;
  const used = new Map<string, number[]>();
  const harness: Harness = {
    mq: () => {
      if (!mq) throw new Error("not set up");
      return mq;
    },
    queue: (delays = []) => {
      const q = uniqueName(`mqc_${name}`);
      used.set(q, delays);
      return q;
    },
  };

  describe(`MessageQueue contract: ${name}`, { skip }, () => {
    before(async () => {
      const made = await setup();
      mq = made.mq;
      cleanup = made.cleanup;
    });
    after(async () => {
      await mq?.close();
      await cleanup?.(used);
    });

    it("round-trips body and string headers, redelivered=false on first delivery", async () => {
      const q = harness.queue();
      const got: Array<{ body: string; redelivered: boolean; headers: Record<string, string> }> = [];
      const consumer = await harness.mq().consume(
        q,
        async (body, meta) => {
          got.push({ body: body.toString(), ...meta });
          return "ack";
        },
        { prefetch: 4 },
      );
      await harness.mq().publish(q, Buffer.from('{"hello":"world"}'), { headers: { "x-request-id": "r-1" } });
      await waitFor("delivery", () => got.length === 1);
      await consumer.drain();
      const first = got[0];
      assert.ok(first);
      assert.equal(first.body, '{"hello":"world"}');
      assert.equal(first.redelivered, false);
      assert.equal(first.headers["x-request-id"], "r-1");
      assert.deepEqual(await harness.mq().stats(q), { ready: 0, unacked: 0 });
    });

    it("never has more than `prefetch` handlers in flight", async () => {
      const q = harness.queue();
      await Promise.all(Array.from({ length: 8 }, (_, i) => harness.mq().publish(q, Buffer.from(String(i)))));
      let inFlight = 0;
      let maxInFlight = 0;
      let done = 0;
      const consumer = await harness.mq().consume(
        q,
        async () => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await sleep(40);
          inFlight -= 1;
          done += 1;
          return "ack";
        },
        { prefetch: 2 },
      );
      await waitFor("8 handled", () => done === 8);
      await consumer.drain();
      assert.equal(maxInFlight, 2);
    });

    it("dead_letter moves the message to the dead-letter queue", async () => {
      const q = harness.queue();
      const dlq = harness.mq().deadLetterQueueName(q);
      assert.equal(dlq, `${q}.dead`);
      let handled = 0;
      const consumer = await harness.mq().consume(
        q,
        async () => {
          handled += 1;
          return "dead_letter";
        },
        { prefetch: 1 },
      );
      await harness.mq().publish(q, Buffer.from("poison"), { headers: { kind: "bad" } });
      await waitFor("dead-lettered", async () => (await harness.mq().stats(dlq)).ready === 1);
      await consumer.drain();
      assert.equal(handled, 1);
      const dead: Array<{ body: string; headers: Record<string, string> }> = [];
      const deadConsumer = await harness.mq().consume(
        dlq,
        async (body, meta) => {
          dead.push({ body: body.toString(), headers: meta.headers });
          return "ack";
        },
        { prefetch: 1 },
      );
      await waitFor("dead letter consumed", () => dead.length === 1);
      await deadConsumer.drain();
      assert.equal(dead[0]?.body, "poison");
      assert.equal(dead[0]?.headers.kind, "bad");
      assert.equal((await harness.mq().stats(q)).ready, 0);
    });

    for (const mode of ["requeue", "throw"] as const) {
      it(`${mode === "requeue" ? "a requeue verdict" : "a handler that throws"} redelivers with redelivered=true`, async () => {
        const q = harness.queue();
        const seen: boolean[] = [];
        const consumer = await harness.mq().consume(
          q,
          async (_body, meta): Promise<HandlerVerdict> => {
            seen.push(meta.redelivered);
            if (seen.length === 1) {
              if (mode === "throw") throw new Error("handler failed");
              return "requeue";
            }
            return "ack";
          },
          { prefetch: 1 },
        );
        await harness.mq().publish(q, Buffer.from("again"));
        await waitFor("redelivery", () => seen.length === 2);
        await consumer.drain();
        assert.deepEqual(seen, [false, true]);
        assert.equal((await harness.mq().stats(harness.mq().deadLetterQueueName(q))).ready, 0);
      });
    }

    it("a delayed publish arrives, and not before the delay", async () => {
      const delayMs = 300;
      const q = harness.queue([delayMs]);
      let arrivedAt = 0;
      const consumer = await harness.mq().consume(
        q,
        async (body) => {
          assert.equal(body.toString(), "later");
          arrivedAt = Date.now();
          return "ack";
        },
        { prefetch: 1 },
      );
      const sentAt = Date.now();
      await harness.mq().publish(q, Buffer.from("later"), { delayMs });
      await waitFor("delayed delivery", () => arrivedAt > 0, 5000);
      await consumer.drain();
      assert.ok(arrivedAt - sentAt >= delayMs, `arrived after ${arrivedAt - sentAt} ms, before the ${delayMs} ms delay`);
    });

    it("drain waits for handlers in flight, then no more deliveries", async () => {
      const q = harness.queue();
      let started = 0;
      let finished = 0;
      const consumer = await harness.mq().consume(
        q,
        async () => {
          started += 1;
          await sleep(150);
          finished += 1;
          return "ack";
        },
        { prefetch: 3 },
      );
      await Promise.all([1, 2, 3].map((i) => harness.mq().publish(q, Buffer.from(String(i)))));
      await waitFor("3 handlers started", () => started === 3);
      await consumer.drain();
      assert.equal(finished, 3, "drain resolved before its handlers finished");
      await Promise.all([4, 5].map((i) => harness.mq().publish(q, Buffer.from(String(i)))));
      await sleep(200);
      assert.equal(started, 3, "a drained consumer got another message");
      // the three were acked (not requeued), the two new ones wait
      await waitFor("2 ready", async () => (await harness.mq().stats(q)).ready === 2);
      assert.equal((await harness.mq().stats(q)).ready, 2);
    });

    it("stats counts ready messages", async () => {
      const q = harness.queue();
      await Promise.all(Array.from({ length: 5 }, (_, i) => harness.mq().publish(q, Buffer.from(String(i)))));
      await waitFor("5 ready", async () => (await harness.mq().stats(q)).ready === 5, 2000);
      const stats = await harness.mq().stats(q);
      assert.equal(stats.ready, 5);
      assert.equal(stats.unacked, 0);
    });

    it("1,000 messages published concurrently all arrive exactly once", async () => {
      const q = harness.queue();
      const counts = new Map<string, number>();
      let total = 0;
      const consumer = await harness.mq().consume(
        q,
        async (body) => {
          const id = body.toString();
          counts.set(id, (counts.get(id) ?? 0) + 1);
          total += 1;
          return "ack";
        },
        { prefetch: 64 },
      );
      const n = 1000;
      await Promise.all(Array.from({ length: n }, (_, i) => harness.mq().publish(q, Buffer.from(`m${i}`))));
      await waitFor("1000 deliveries", () => total >= n, 10_000);
      await sleep(100); // room for any duplicate to show up
      await consumer.drain();
      assert.equal(total, n);
      assert.equal(counts.size, n);
      for (const [id, count] of counts) assert.equal(count, 1, `${id} delivered ${count} times`);
    });
  });

  return harness;
}

// ------------------------------------------------------------------ memory

messageQueueContract("memory", undefined, async () => ({ mq: new MemoryMessageQueue(), cleanup: async () => undefined }));

describe("MemoryMessageQueue", () => {
  it("rejects publish after close", async () => {
    const mq = new MemoryMessageQueue();
    await mq.close();
    await assert.rejects(mq.publish("q", Buffer.from("x")), (err: unknown) => err instanceof AppError && err.code === "service_unavailable");
  });
});

// ------------------------------------------------------------------ RabbitMQ

const rabbitSkip = await requireServices("rabbitmq");
const url = TEST_URLS.rabbitmq;

async function deleteQueues(queues: Map<string, number[]>): Promise<void> {
  const conn = await amqpConnect(url);
  try {
    for (const [q, delays] of queues) {
      for (const name of [q, `${q}.dead`, ...delays.map((d) => retryQueueName(q, d))]) {
        const ch = await conn.createChannel();
        ch.on("error", () => undefined);
        await ch.deleteQueue(name).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
    }
  } finally {
    await conn.close();
  }
}

const rabbit = messageQueueContract("rabbitmq", rabbitSkip, async () => ({
  // The contract is about delivery, not the admission path's 250 ms confirm bound: 1,000 persistent
  // messages published at once wait on the broker's disk, which on a slow machine takes longer.
  mq: await RabbitMessageQueue.connect({ url, queues: [], confirmTimeoutMs: 10_000 }),
  cleanup: deleteQueues,
}));

describe("RabbitMessageQueue specifics", { skip: rabbitSkip }, () => {
  const extra = new Map<string, number[]>();
  const fresh = (delays: number[] = []) => {
    const q = uniqueName("mqr");
    extra.set(q, delays);
    return q;
  };
  after(() => deleteQueues(extra));

  it("declares durable queues with the documented arguments and publishes persistent messages", async () => {
    const q = fresh([250]);
    const mq = await RabbitMessageQueue.connect({ url, queues: [q] });
    try {
      await mq.publish(q, Buffer.from("p"), { headers: { a: "b" } });
      await mq.publish(q, Buffer.from("d"), { delayMs: 250 });
    } finally {
      await mq.close();
    }
    const conn = await amqpConnect(url);
    try {
      const ch = await conn.createChannel();
      // Re-declaring with the same durable flag and arguments succeeds only if they are equivalent.
      await ch.assertQueue(q, { durable: true, arguments: mainQueueArguments(q) });
      await ch.assertQueue(`${q}.dead`, { durable: true });
      await ch.assertQueue(retryQueueName(q, 250), { durable: true, arguments: retryQueueArguments(q, delayBucketMs(250)) });
      const msg = await ch.get(q, { noAck: true });
      assert.ok(msg, "message not found");
      assert.equal(msg.content.toString(), "p");
      assert.equal(msg.properties.deliveryMode, 2, "message not persistent");
      await ch.close();
    } finally {
      await conn.close();
    }
  });

  it("rounds delays up to buckets", () => {
    assert.equal(delayBucketMs(0), 10);
    assert.equal(delayBucketMs(300), 300);
    assert.equal(delayBucketMs(301), 400);
    assert.equal(delayBucketMs(1000), 1000);
    assert.equal(delayBucketMs(1001), 1500);
    assert.equal(delayBucketMs(7000), 8000);
    assert.equal(delayBucketMs(8001), 10_000);
    for (let d = 1; d < 1e7; d = Math.ceil(d * 1.37)) {
      const b = delayBucketMs(d);
      assert.ok(b >= d && b <= Math.max(10, d * 1.5), `${d} → ${b}`);
    }
  });

  it("works with a queue that already exists with other arguments", async () => {
    const q = fresh();
    const conn = await amqpConnect(url);
    const ch = await conn.createChannel();
    await ch.assertQueue(q, { durable: true, arguments: { "x-max-length": 1000 } });
    await conn.close();
    const mq = await RabbitMessageQueue.connect({ url, queues: [q] });
    try {
      let got = "";
      const consumer = await mq.consume(
        q,
        async (body) => {
          got = body.toString();
          return "ack";
        },
        { prefetch: 1 },
      );
      await mq.publish(q, Buffer.from("ok"));
      await waitFor("delivery", () => got === "ok");
      await consumer.drain();
    } finally {
      await mq.close();
    }
  });

  it("publish after close rejects rather than hanging", async () => {
    const q = fresh();
    const mq = await RabbitMessageQueue.connect({ url, queues: [q] });
    await mq.close();
    await assert.rejects(
      within(2000, mq.publish(q, Buffer.from("x")), "publish after close"),
      (err: unknown) => err instanceof AppError && err.code === "service_unavailable",
    );
  });

  it("publish to a queue nothing routes to is rejected, not silently dropped", async () => {
    const q = fresh();
    const mq = await RabbitMessageQueue.connect({ url, queues: [] });
    const conn = await amqpConnect(url);
    try {
      await mq.publish(q, Buffer.from("declares the queue"));
      // Deleted behind the adapter's back: it still takes the queue for declared.
      const channel = await conn.createChannel();
      await channel.deleteQueue(q);
      await channel.close();
      await assert.rejects(within(2000, mq.publish(q, Buffer.from("x")), "unroutable publish"), /unroutable/);
      // The rejection makes it declare the topology again: the next publish goes through.
      await within(2000, mq.publish(q, Buffer.from("y")), "publish after re-declaring");
    } finally {
      await conn.close();
      await mq.close();
    }
  });

  it("on connection loss, publish rejects at once; it reconnects and consumers resume", async () => {
    const q = fresh();
    const proxy = await startTcpProxy(url);
    const mq = await RabbitMessageQueue.connect({ url: proxy.url, queues: [q], reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    try {
      const got: string[] = [];
      const consumer = await mq.consume(
        q,
        async (body) => {
          got.push(body.toString());
          return "ack";
        },
        { prefetch: 4 },
      );
      await mq.publish(q, Buffer.from("before"));
      await waitFor("first delivery", () => got.length === 1);
      proxy.cut();
      await assert.rejects(
        within(1000, mq.publish(q, Buffer.from("during")), "publish during outage"),
        (err: unknown) => err instanceof AppError && err.code === "service_unavailable",
      );
      await waitFor("reconnect", () => mq.connected, 5000);
      await waitFor("publish after reconnect", async () => {
        try {
          await mq.publish(q, Buffer.from("after"));
          return true;
        } catch {
          return false;
        }
      });
      await waitFor("delivery after reconnect", () => got.includes("after"), 5000);
      await consumer.drain();
      assert.ok(!got.includes("during"));
    } finally {
      await mq.close();
      await proxy.close();
    }
  });

  it("close() during a reconnect back-off returns at once", async () => {
    const proxy = await startTcpProxy(url);
    const mq = await RabbitMessageQueue.connect({ url: proxy.url, queues: [], reconnect: { initialDelayMs: 20_000 } });
    proxy.cut();
    await waitFor("disconnected", () => !mq.connected, 2000);
    await within(2000, mq.close(), "close during back-off");
    await proxy.close();
  });

  it("a consumer whose queue is deleted under it consumes again once it is back", async () => {
    const q = fresh();
    const mq = await RabbitMessageQueue.connect({ url, queues: [q] });
    const conn = await amqpConnect(url);
    try {
      const got: string[] = [];
      const consumer = await mq.consume(
        q,
        async (body) => {
          got.push(body.toString());
          return "ack";
        },
        { prefetch: 1 },
      );
      const ch = await conn.createChannel();
      await ch.deleteQueue(q);
      await waitFor("published after re-declaration", async () => {
        try {
          await mq.publish(q, Buffer.from("back"));
          return true;
        } catch {
          return false;
        }
      });
      await waitFor("delivery to the restarted consumer", () => got.includes("back"), 5000);
      await consumer.drain();
    } finally {
      await conn.close();
      await mq.close();
    }
  });

  it("a queue deleted under it is declared again", async () => {
    const q = fresh();
    const mq = await RabbitMessageQueue.connect({ url, queues: [q] });
    const conn = await amqpConnect(url);
    try {
      await mq.publish(q, Buffer.from("1"));
      const ch = await conn.createChannel();
      await ch.deleteQueue(q);
      // the first publish after the deletion is refused (unroutable), the next one re-declares
      await assert.rejects(mq.publish(q, Buffer.from("2")), /unroutable/);
      await mq.publish(q, Buffer.from("3"));
      assert.equal((await mq.stats(q)).ready, 1);
    } finally {
      await conn.close();
      await mq.close();
    }
  });
});

void rabbit;

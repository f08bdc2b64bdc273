/**
 * amqplib writes every frame on its own (a confirmed publish is three frames); the adapter corks
 * the socket around each of amqplib's write passes (src/adapters/rabbitmq/coalesced-writes.ts), so
 * publishes issued together leave in one write. Counted at the socket, on the real broker.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { connect as amqpConnect } from "amqplib";
import { RabbitMessageQueue } from "../../src/adapters/rabbitmq/message-queue.js";
import { requireServices, TEST_URLS, uniqueName } from "../support/services.js";

const skip = await requireServices("rabbitmq");

describe("AMQP frames of one pass leave in one socket write", { skip }, () => {
  const queue = uniqueName("frames");
  let mq: RabbitMessageQueue;
  before(async () => {
    mq = await RabbitMessageQueue.connect({ url: TEST_URLS.rabbitmq, queues: [queue] });
  });
  after(async () => {
    await mq?.close();
    const connection = await amqpConnect(TEST_URLS.rabbitmq);
    const channel = await connection.createChannel();
    for (const name of [queue, `${queue}.dead`]) await channel.deleteQueue(name).catch(() => undefined);
    await connection.close();
  });

  it("40 confirmed publishes issued at once take a few writes, not three each", async () => {
    await mq.publish(queue, Buffer.from("warm-up"));
    const proto = Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown };
    const original = proto._writeGeneric;
    let writes = 0;
    proto._writeGeneric = function (this: Socket, ...args: unknown[]) {
      writes++;
      return original.apply(this, args);
    };
    try {
      await Promise.all(Array.from({ length: 40 }, (_, i) => mq.publish(queue, Buffer.from(`m${i}`))));
    } finally {
      proto._writeGeneric = original;
    }
    assert.ok(writes > 0, "the publishes were written");
    assert.ok(writes <= 4, `${writes} socket writes for 40 publishes (120 frames)`);
  });
});

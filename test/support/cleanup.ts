/** What suites leave on the shared servers, removed: their queues and their Redis keys. */
import { Redis } from "ioredis";
import { TEST_URLS } from "./services.js";

/** Deletes each queue with its dead-letter queue (missing ones are fine). */
export async function deleteQueues(names: string[], url = TEST_URLS.rabbitmq): Promise<void> {
  const amqp = await import("amqplib");
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  for (const name of names) {
    for (const queue of [name, `${name}.dead`]) await channel.deleteQueue(queue).catch(() => undefined);
  }
  await connection.close().catch(() => undefined);
}

/** Deletes every key under the prefix. */
export async function deleteRedisKeys(prefix: string, url = TEST_URLS.redis): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * Declaring queues on a session: each main queue with its dead-letter queue once per connection,
 * delay queues on first use and again at least once a minute while in use (so their x-expires
 * clock never runs out with messages in them). A queue that exists with other arguments is used
 * as it is.
 */
import type { Options } from "amqplib";
import { deadLetterQueueName, delayQueueName, isDeadLetterQueue, mainQueueArguments, retryQueueArguments } from "./naming.js";
import { adminChannel, type Log, type Session } from "./session.js";

/** Re-declare a delay queue after this long, so its x-expires clock never runs out while in use. */
const DELAY_REDECLARE_MS = 60_000;

/** Declare Q (+ Q.dead) once per connection. Argument mismatches with an existing queue are logged, not fatal. */
export function ensureQueue(session: Session, queue: string, log: Log): Promise<void> {
  let p = session.declared.get(queue);
  if (!p) {
    p = (async () => {
      if (isDeadLetterQueue(queue)) {
        // A dead-letter queue (consumed for inspection or replay) has no dead-letter queue itself.
        await assertOrCheck(session, queue, { durable: true }, log);
        return;
      }
      await assertOrCheck(session, deadLetterQueueName(queue), { durable: true }, log);
      await assertOrCheck(session, queue, { durable: true, arguments: mainQueueArguments(queue) }, log);
    })();
    session.declared.set(queue, p);
    p.catch(() => session.declared.delete(queue));
  }
  return p;
}

export function ensureDelayQueue(session: Session, queue: string, bucketMs: number, log: Log): Promise<void> {
  const name = delayQueueName(queue, bucketMs);
  const now = Date.now();
  const known = session.delayDeclared.get(name);
  if (known && now - known.at < DELAY_REDECLARE_MS) return known.promise;
  const promise = assertOrCheck(session, name, { durable: true, arguments: retryQueueArguments(queue, bucketMs) }, log);
  session.delayDeclared.set(name, { promise, at: now });
  promise.catch(() => session.delayDeclared.delete(name));
  return promise;
}

async function assertOrCheck(session: Session, queue: string, options: Options.AssertQueue, log: Log): Promise<void> {
  try {
    const channel = await adminChannel(session);
    await channel.assertQueue(queue, options);
  } catch (err) {
    if ((err as { code?: number }).code !== 406) throw err;
    // PRECONDITION_FAILED: the queue exists with other arguments (declared by hand or by an
    // older definition). Use it as it is.
    log("warn", { err, queue, arguments: options.arguments }, "queue exists with different arguments; using it as is");
    const channel = await adminChannel(session);
    await channel.checkQueue(queue);
  }
}

/**
 * Publishing on a session: persistent, mandatory (an unroutable message rejects its publish rather
 * than being confirmed and dropped) and confirmed by the broker. A delayed publish goes through the
 * delay queue of its bucket.
 */
import { randomUUID } from "node:crypto";
import { AppError } from "../../errors.js";
import { delayBucketMs, delayQueueName } from "./naming.js";
import { unavailable, type Log, type Session } from "./session.js";
import { ensureDelayQueue, ensureQueue } from "./topology.js";

export async function publish(
  session: Session,
  queue: string,
  body: Buffer,
  options: { delayMs?: number; headers?: Record<string, string> },
  log: Log,
): Promise<void> {
  if (session.blocked) throw unavailable("message broker is blocking publishers (resource alarm)");
  try {
    await ensureQueue(session, queue, log);
    let routingKey = queue;
    if (options.delayMs !== undefined && options.delayMs > 0) {
      const bucket = delayBucketMs(options.delayMs);
      routingKey = delayQueueName(queue, bucket);
      await ensureDelayQueue(session, queue, bucket, log);
    }
    await publishConfirmed(session, routingKey, body, options.headers);
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (!session.alive) throw unavailable("message broker connection lost", err);
    throw err;
  }
}

function publishConfirmed(session: Session, routingKey: string, body: Buffer, headers: Record<string, string> | undefined): Promise<void> {
  if (!session.alive) return Promise.reject(unavailable("message broker connection lost"));
  const messageId = randomUUID();
  const sentAt = Date.now();
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    // No confirm within the bound: the publish fails (its row is removed by the caller). When the
    // broker confirmed nothing at all since, the connection is taken for dead (blackholed) and dropped,
    // so the next publishes fail at once and the reconnect starts now, not after missed heartbeats.
    const timer = setTimeout(() => {
      settle(new AppError("service_unavailable", `the message broker did not confirm within ${session.confirmTimeoutMs} ms`, { retryAfterSeconds: 1 }));
      if (session.lastConfirmAt < sentAt) session.abandon(new Error("no publisher confirm in time"));
    }, session.confirmTimeoutMs);
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.pending.delete(messageId);
      const returned = session.returned.delete(messageId);
      if (err) reject(err);
      else if (returned) {
        // A queue vanished (deleted by hand?): declare the topology again on the next publish.
        session.declared.clear();
        session.delayDeclared.clear();
        reject(new AppError("service_unavailable", `message to "${routingKey}" was unroutable (no such queue)`));
      } else resolve();
    };
    session.pending.set(messageId, { reject: (err) => settle(err) });
    try {
      session.publisher.publish(
        "",
        routingKey,
        body,
        {
          persistent: true,
          mandatory: true,
          messageId,
          contentType: "application/json",
          ...(headers ? { headers } : {}),
        },
        (err: unknown) => {
          session.lastConfirmAt = Date.now();
          if (err) {
            settle(
              session.alive
                ? new AppError("service_unavailable", "message was not confirmed by the broker", { cause: err })
                : unavailable("message broker connection lost", err),
            );
          } else settle(null);
        },
      );
    } catch (err) {
      settle(unavailable("message broker channel is closed", err));
    }
  });
}

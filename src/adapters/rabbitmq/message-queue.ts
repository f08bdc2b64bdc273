/**
 * MessageQueue over RabbitMQ (amqplib), with publisher confirms, dead-letter queues, delayed retry
 * through TTL queues, bounded prefetch per consumer, and background reconnection.
 *
 * Topology for every main queue Q (declared on connect for `queues`, lazily for any other queue
 * this adapter publishes to or consumes from; all through the default exchange ""):
 *
 *   Q                 durable, arguments { x-dead-letter-exchange: "", x-dead-letter-routing-key: "Q.dead" }
 *   Q.dead            durable, no arguments (dead_letter verdicts land here). A queue whose name
 *                     ends in ".dead" is taken for a dead-letter queue: declared without arguments.
 *   Q.retry.<ms>      durable, created lazily by publish(Q, body, { delayMs }), arguments
 *                     { x-message-ttl: <ms>, x-dead-letter-exchange: "", x-dead-letter-routing-key: "Q",
 *                       x-expires: 2 * <ms> + 120000 } — a message waits there <ms> and then is
 *                     dead-lettered back into Q. <ms> is delayMs rounded UP to the series
 *                     1, 1.5, 2, 3, 4, 5, 6, 8 × 10^k (never earlier, at most 50% later; ≥ 10 ms),
 *                     so at most ~8 delay queues per decade exist. Unused delay queues expire by
 *                     themselves; the adapter re-declares a delay queue at least once a minute while
 *                     publishing to it, so a queue never expires with messages in it.
 *
 * Every message is published persistent and mandatory (an unroutable message rejects its publish
 * rather than being confirmed and dropped). stats().unacked is always 0: AMQP's queue.declare only
 * reports ready messages and consumers (the management API would be needed for unacked).
 *
 * Connection loss: publishes in flight and new publishes reject at once with AppError
 * "service_unavailable"; the adapter reconnects in the background (exponential back-off with
 * jitter, 100 ms up to 500 ms), re-declares the topology and re-establishes every consumer that has
 * not been drained. A consumer waits for its handlers still running from the lost connection before
 * it consumes again, so the prefetch bound holds across reconnects; their verdicts are discarded
 * (the broker redelivers those messages with redelivered=true).
 */
import type { Consumer, ConsumeOptions, MessageQueue, QueueStats } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";
import { coalesceFrameWrites } from "./coalesced-writes.js";
import { RabbitConsumer, type ConsumerOwner, type MessageHandler } from "./consumer.js";
import { deadLetterQueueName } from "./naming.js";
import { publish } from "./publish.js";
import { adminChannel, DEFAULT_CONNECT_TIMEOUT_MS, endSession, openSession, unavailable, type Log, type Session } from "./session.js";
import { ensureQueue } from "./topology.js";

export type { MessageHandler } from "./consumer.js";
export { delayBucketMs, deadLetterQueueName, retryQueueName, mainQueueArguments, retryQueueArguments } from "./naming.js";

export interface RabbitMessageQueueOptions {
  url: string;
  /** Main queues declared (with their dead-letter queues) on connect and after every reconnect. */
  queues: string[];
  logger?: Logger;
  /** Reconnect back-off; defaults 100 ms doubling up to 500 ms. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Connection heartbeat in seconds (default 10) so a dead broker is noticed. */
  heartbeatSeconds?: number;
  /** How long a publish waits for its confirm (default 250 ms); see publish.ts. */
  confirmTimeoutMs?: number;
  /** How long connecting (TCP and the AMQP handshake) may take (default 1 s). */
  connectTimeoutMs?: number;
}

export class RabbitMessageQueue implements MessageQueue, ConsumerOwner {
  private session: Session | null = null;
  private readonly consumers = new Set<RabbitConsumer>();
  private closing = false;
  private closed = false;
  private reconnecting: Promise<void> | null = null;
  private wakeBackoff: (() => void) | null = null;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  readonly log: Log;

  private constructor(private readonly options: RabbitMessageQueueOptions) {
    const logger = options.logger;
    this.log = (level, obj, msg) => logger?.[level](obj, msg);
    this.initialDelayMs = options.reconnect?.initialDelayMs ?? 100;
    // At most half a second between attempts: admissions resume well within 2 s of the broker answering.
    this.maxDelayMs = options.reconnect?.maxDelayMs ?? 500;
  }

  /** Connects and declares the topology; rejects if the broker cannot be reached now. */
  static async connect(options: RabbitMessageQueueOptions): Promise<RabbitMessageQueue> {
    coalesceFrameWrites();
    const mq = new RabbitMessageQueue(options);
    mq.session = await mq.openDeclaredSession();
    return mq;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.session?.alive === true;
  }

  forget(consumer: RabbitConsumer): void {
    this.consumers.delete(consumer);
  }

  deadLetterQueueName(queue: string): string {
    return deadLetterQueueName(queue);
  }

  // ------------------------------------------------------------------ connection

  private async openDeclaredSession(): Promise<Session> {
    const session = await openSession(this.options, this.log, (s, err) => this.onSessionLost(s, err));
    const declaring = (async () => {
      for (const queue of this.options.queues) await ensureQueue(session, queue, this.log);
    })();
    let declared: boolean;
    try {
      // Bounded like the handshake: a broker that stops answering here would hold the reconnect forever.
      declared = await within(this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, declaring);
      if (declared) await declaring; // settled: surfaces its error
    } catch (err) {
      session.alive = false;
      await session.model.close().catch(() => undefined);
      throw err;
    }
    if (!declared) {
      const err = unavailable("message broker did not answer the topology declarations in time");
      session.abandon(err);
      declaring.catch(() => undefined);
      throw err;
    }
    return session;
  }

  private onSessionLost(session: Session, err?: Error): void {
    if (!session.alive) return;
    endSession(session, unavailable("message broker connection lost", err));
    if (this.session === session) this.session = null;
    if (this.closing) return;
    this.log("error", { err }, "rabbitmq connection lost; reconnecting in the background");
    this.startReconnect();
  }

  private startReconnect(): void {
    if (this.reconnecting || this.closing) return;
    this.reconnecting = (async () => {
      let delay = this.initialDelayMs;
      let attempt = 0;
      while (!this.closing) {
        attempt += 1;
        await this.backoff(delay * (0.8 + Math.random() * 0.4));
        if (this.closing) break;
        try {
          const session = await this.openDeclaredSession();
          if (this.closing) {
            session.alive = false;
            await session.model.close().catch(() => undefined);
            break;
          }
          if (!session.alive) continue; // lost again while it was being set up
          this.session = session;
          this.log("info", { attempt }, "rabbitmq reconnected");
          for (const consumer of this.consumers) if (!consumer.isDrained) consumer.resume(session);
          break;
        } catch (err) {
          this.log("warn", { err, attempt, nextDelayMs: Math.min(delay * 2, this.maxDelayMs) }, "rabbitmq reconnect failed");
          delay = Math.min(delay * 2, this.maxDelayMs);
        }
      }
    })().finally(() => {
      this.reconnecting = null;
    });
  }

  /** A reconnect wait that close() cuts short. */
  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeBackoff = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeBackoff = done;
    });
  }

  private liveSession(): Session {
    if (this.closed || this.closing) throw unavailable("message queue is closed");
    const session = this.session;
    if (!session || !session.alive) throw unavailable("message broker is not connected");
    return session;
  }

  // ------------------------------------------------------------------ publish and consume

  async publish(queue: string, body: Buffer, options: { delayMs?: number; headers?: Record<string, string> } = {}): Promise<void> {
    await publish(this.liveSession(), queue, body, options, this.log);
  }

  async consume(queue: string, handler: MessageHandler, options: ConsumeOptions): Promise<Consumer> {
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) throw new RangeError("prefetch must be an integer ≥ 1");
    const session = this.liveSession();
    const consumer = new RabbitConsumer(this, queue, handler, options.prefetch);
    this.consumers.add(consumer);
    try {
      await consumer.start(session);
    } catch (err) {
      this.consumers.delete(consumer);
      await consumer.drain().catch(() => undefined);
      throw err;
    }
    return consumer;
  }

  // ------------------------------------------------------------------ inspection

  /** ready = messages waiting in the queue; unacked is always 0 (AMQP does not report it). */
  async stats(queue: string): Promise<QueueStats> {
    const session = this.liveSession();
    const channel = await adminChannel(session);
    const reply = await channel.checkQueue(queue);
    return { ready: reply.messageCount, unacked: 0 };
  }

  async ping(): Promise<void> {
    const session = this.liveSession();
    const channel = await adminChannel(session);
    const first = this.options.queues[0];
    if (first !== undefined) {
      await channel.checkQueue(first);
    } else {
      const ch = await session.model.createChannel();
      await ch.close();
    }
  }

  /** Drain consumers, wait for outstanding confirms, then close the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    await Promise.allSettled([...this.consumers].map((c) => c.drain()));
    this.closing = true;
    const session = this.session;
    if (session?.alive) {
      // Bounded: a broker that stopped answering would hold both waits forever.
      const bound = session.confirmTimeoutMs;
      const answered = await within(bound, session.publisher.waitForConfirms());
      this.session = null;
      if (!answered || !(await within(bound, session.model.close()))) session.abandon(new Error("no answer to closing"));
      session.alive = false;
      endSession(session, unavailable("message queue is closed"));
    }
    this.wakeBackoff?.();
    if (this.reconnecting) await this.reconnecting.catch(() => undefined);
    this.closed = true;
  }
}

/** True when `work` settled within `ms` (either way); false when it was still pending. */
async function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

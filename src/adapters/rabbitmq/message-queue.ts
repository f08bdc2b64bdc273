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
 * jitter, 100 ms up to 15 s), re-declares the topology and re-establishes every consumer that has
 * not been drained. A consumer waits for its handlers still running from the lost connection before
 * it consumes again, so the prefetch bound holds across reconnects; their verdicts are discarded
 * (the broker redelivers those messages with redelivered=true).
 */
import { randomUUID } from "node:crypto";
import { connect as amqpConnect } from "amqplib";
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message, Options } from "amqplib";
import type { Consumer, ConsumeOptions, HandlerVerdict, MessageQueue, QueueStats } from "../../domain/ports.js";
import { AppError } from "../../errors.js";
import type { Logger } from "../../observability/logger.js";

export type MessageHandler = (
  body: Buffer,
  meta: { redelivered: boolean; headers: Record<string, string> },
) => Promise<HandlerVerdict>;

export interface RabbitMessageQueueOptions {
  url: string;
  /** Main queues declared (with their dead-letter queues) on connect and after every reconnect. */
  queues: string[];
  logger?: Logger;
  /** Reconnect back-off; defaults 100 ms doubling up to 15 s. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Connection heartbeat in seconds (default 10) so a dead broker is noticed. */
  heartbeatSeconds?: number;
}

const DELAY_STEPS = [1, 1.5, 2, 3, 4, 5, 6, 8] as const;
const MIN_DELAY_BUCKET_MS = 10;
const MAX_DELAY_BUCKET_MS = 2 ** 31 - 1;
/** Re-declare a delay queue after this long, so its x-expires clock never runs out while in use. */
const DELAY_REDECLARE_MS = 60_000;

/** delayMs rounded up to the delay-queue series (see the module comment). */
export function delayBucketMs(delayMs: number): number {
  const d = Math.max(MIN_DELAY_BUCKET_MS, Math.ceil(delayMs));
  if (d >= MAX_DELAY_BUCKET_MS) return MAX_DELAY_BUCKET_MS;
  let magnitude = 10 ** Math.floor(Math.log10(d));
  for (;;) {
    for (const step of DELAY_STEPS) {
      const candidate = Math.round(step * magnitude);
      if (candidate >= d) return Math.min(candidate, MAX_DELAY_BUCKET_MS);
    }
    magnitude *= 10;
  }
}

export const deadLetterQueueName = (queue: string): string => `${queue}.dead`;
/** The delay queue a publish with `delayMs` goes through. */
export const retryQueueName = (queue: string, delayMs: number): string => `${queue}.retry.${delayBucketMs(delayMs)}`;

/** Queue arguments, exported so manifests/tests can check they match what is declared. */
export function mainQueueArguments(queue: string): Record<string, string> {
  return { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": deadLetterQueueName(queue) };
}
export function retryQueueArguments(queue: string, bucketMs: number): Record<string, string | number> {
  return {
    "x-message-ttl": bucketMs,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": queue,
    "x-expires": Math.min(2 * bucketMs + 120_000, MAX_DELAY_BUCKET_MS),
  };
}

function unavailable(message: string, cause?: unknown): AppError {
  return new AppError("service_unavailable", message, cause === undefined ? {} : { cause });
}

function stringHeaders(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw && typeof raw === "object") {
    for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof value === "string") out[key] = value;
      else if (Buffer.isBuffer(value)) out[key] = value.toString("utf8"); // longstr may arrive as bytes
    }
  }
  return out;
}

interface PendingPublish {
  reject: (err: Error) => void;
}

/** One live connection with its channels. Replaced as a whole on reconnect. */
interface Session {
  model: ChannelModel;
  publisher: ConfirmChannel;
  admin: Channel | null;
  /** main queues whose topology was declared on this session */
  declared: Map<string, Promise<void>>;
  /** delay queue name → { promise, declaredAt } */
  delayDeclared: Map<string, { promise: Promise<void>; at: number }>;
  /** messageIds returned by the broker as unroutable (mandatory) */
  returned: Set<string>;
  pending: Map<string, PendingPublish>;
  alive: boolean;
  /** The broker blocks publishers during a resource (memory/disk) alarm. */
  blocked: boolean;
}

class RabbitConsumer implements Consumer {
  private channel: Channel | null = null;
  private consumerTag: string | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private drained = false;
  private drainPromise: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private starting: Promise<void> | null = null;

  constructor(
    private readonly owner: RabbitMessageQueue,
    readonly queue: string,
    private readonly handler: MessageHandler,
    private readonly prefetch: number,
  ) {}

  get isDrained(): boolean {
    return this.drained;
  }

  /** Open a channel and consume; the previous generation's handlers must finish first. */
  start(session: Session): Promise<void> {
    const run = async () => {
      if (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
      if (this.drained || !session.alive) return;
      await this.owner.ensureQueue(session, this.queue);
      const channel = await session.model.createChannel();
      channel.on("error", (err: Error) => this.owner.log("warn", { err, queue: this.queue }, "consumer channel error"));
      channel.on("close", () => {
        if (this.channel === channel) {
          this.channel = null;
          this.consumerTag = null;
        }
        if (!this.drained && session.alive && !this.owner.isClosing) this.scheduleRestart(session);
      });
      await channel.prefetch(this.prefetch, false);
      this.channel = channel;
      const reply = await channel.consume(this.queue, (msg) => this.onMessage(channel, msg), { noAck: false });
      this.consumerTag = reply.consumerTag;
      if (this.drained) await this.cancel(); // drain() was called while we were starting
    };
    const p = run().finally(() => {
      if (this.starting === p) this.starting = null;
    });
    this.starting = p;
    return p;
  }

  /** start(), retried every second while it fails (after a reconnect). */
  resume(session: Session): void {
    this.start(session).catch((err: unknown) => {
      this.owner.log("warn", { err, queue: this.queue }, "could not re-establish consumer; retrying");
      session.declared.delete(this.queue);
      this.scheduleRestart(session);
    });
  }

  private scheduleRestart(session: Session): void {
    if (this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.drained || !session.alive || this.owner.isClosing) return;
      this.resume(session);
    }, 1000);
    this.restartTimer.unref?.();
  }

  private onMessage(channel: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // Cancelled by the broker (queue deleted, node failover): consume again later.
      this.owner.log("warn", { queue: this.queue }, "consumer cancelled by broker");
      if (this.channel === channel) {
        this.consumerTag = null;
        channel.close().catch(() => undefined); // close handler schedules the restart
      }
      return;
    }
    if (this.drained) {
      // Raced with cancel: give it back untouched.
      try {
        channel.nack(msg, false, true);
      } catch {
        /* channel gone: the broker requeues it anyway */
      }
      return;
    }
    const task = this.handle(channel, msg);
    this.inFlight.add(task);
    void task.finally(() => this.inFlight.delete(task));
  }

  private async handle(channel: Channel, msg: ConsumeMessage): Promise<void> {
    let verdict: HandlerVerdict;
    try {
      verdict = await this.handler(msg.content, {
        redelivered: msg.fields.redelivered,
        headers: stringHeaders(msg.properties.headers),
      });
    } catch (err) {
      this.owner.log("warn", { err, queue: this.queue }, "message handler threw; requeueing");
      verdict = "requeue";
    }
    if (this.channel !== channel) return; // channel lost since delivery: the broker redelivers it
    try {
      if (verdict === "ack") channel.ack(msg);
      else if (verdict === "dead_letter") channel.nack(msg, false, false);
      else channel.nack(msg, false, true);
    } catch (err) {
      this.owner.log("warn", { err, queue: this.queue }, "could not settle message; the broker will redeliver it");
    }
  }

  private async cancel(): Promise<void> {
    const channel = this.channel;
    const tag = this.consumerTag;
    this.consumerTag = null;
    if (channel && tag) {
      try {
        await channel.cancel(tag);
      } catch {
        /* channel already closed */
      }
    }
  }

  drain(): Promise<void> {
    if (this.drainPromise) return this.drainPromise;
    this.drained = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    this.drainPromise = (async () => {
      if (this.starting) await this.starting.catch(() => undefined);
      await this.cancel();
      while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
      const channel = this.channel;
      this.channel = null;
      // Closing the channel waits for close-ok, which the broker sends only after the acks sent
      // before it: once this resolves every verdict has reached the broker.
      if (channel) await channel.close().catch(() => undefined);
      this.owner.forget(this);
    })();
    return this.drainPromise;
  }
}

export class RabbitMessageQueue implements MessageQueue {
  private session: Session | null = null;
  private readonly consumers = new Set<RabbitConsumer>();
  private closing = false;
  private closed = false;
  private reconnecting: Promise<void> | null = null;
  private readonly logger: Logger | undefined;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;

  private constructor(private readonly options: RabbitMessageQueueOptions) {
    this.logger = options.logger;
    this.initialDelayMs = options.reconnect?.initialDelayMs ?? 100;
    this.maxDelayMs = options.reconnect?.maxDelayMs ?? 15_000;
  }

  /** Connects and declares the topology; rejects if the broker cannot be reached now. */
  static async connect(options: RabbitMessageQueueOptions): Promise<RabbitMessageQueue> {
    const mq = new RabbitMessageQueue(options);
    mq.session = await mq.openSession();
    return mq;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.session?.alive === true;
  }

  log(level: "info" | "warn" | "error", obj: Record<string, unknown>, msg: string): void {
    this.logger?.[level](obj, msg);
  }

  forget(consumer: RabbitConsumer): void {
    this.consumers.delete(consumer);
  }

  deadLetterQueueName(queue: string): string {
    return deadLetterQueueName(queue);
  }

  // ------------------------------------------------------------------ connection

  private async openSession(): Promise<Session> {
    const url = new URL(this.options.url);
    if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(this.options.heartbeatSeconds ?? 10));
    const model = await amqpConnect(url.toString(), { timeout: 5000 });
    let session: Session | undefined;
    try {
      const publisher = await model.createConfirmChannel();
      session = {
        model,
        publisher,
        admin: null,
        declared: new Map(),
        delayDeclared: new Map(),
        returned: new Set(),
        pending: new Map(),
        alive: true,
        blocked: false,
      };
      const s = session;
      publisher.on("return", (msg: Message) => {
        const id = msg.properties.messageId as unknown;
        if (typeof id === "string") s.returned.add(id);
      });
      publisher.on("error", (err: Error) => this.log("warn", { err }, "publisher channel error"));
      publisher.on("close", () => {
        // The publisher channel can close alone (channel-level error); then the session is useless.
        // Checked a tick later: when the whole connection went, its own close handler runs first.
        setImmediate(() => {
          if (!s.alive) return;
          this.log("warn", {}, "publisher channel closed alone; reopening the connection");
          this.onSessionLost(s, new Error("publisher channel closed"));
          void s.model.close().catch(() => undefined);
        });
      });
      model.on("error", (err: Error) => this.log("warn", { err }, "rabbitmq connection error"));
      model.on("close", (err?: Error) => this.onSessionLost(s, err));
      model.on("blocked", (reason: string) => {
        s.blocked = true;
        this.log("warn", { reason }, "rabbitmq blocks publishers (resource alarm); publishes are refused until it lifts");
      });
      model.on("unblocked", () => {
        s.blocked = false;
        this.log("info", {}, "rabbitmq unblocked publishers");
      });
      for (const queue of this.options.queues) await this.ensureQueue(s, queue);
      return s;
    } catch (err) {
      if (session) session.alive = false;
      await model.close().catch(() => undefined);
      throw err;
    }
  }

  private onSessionLost(session: Session, err?: Error): void {
    if (!session.alive) return;
    session.alive = false;
    const error = unavailable("message broker connection lost", err);
    for (const pending of session.pending.values()) pending.reject(error);
    session.pending.clear();
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
          const session = await this.openSession();
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

  private wakeBackoff: (() => void) | null = null;

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

  /** A channel for declarations and checks, reopened after a channel-level error closed it. */
  private async adminChannel(session: Session): Promise<Channel> {
    if (session.admin) return session.admin;
    const channel = await session.model.createChannel();
    channel.on("error", () => undefined); // 404/406 on passive checks are expected and handled
    channel.on("close", () => {
      if (session.admin === channel) session.admin = null;
    });
    session.admin = channel;
    return channel;
  }

  /** Declare Q (+ Q.dead) once per connection. Argument mismatches with an existing queue are logged, not fatal. */
  ensureQueue(session: Session, queue: string): Promise<void> {
    let p = session.declared.get(queue);
    if (!p) {
      p = (async () => {
        if (queue.endsWith(".dead")) {
          // A dead-letter queue (consumed for inspection or replay) has no dead-letter queue itself.
          await this.assertOrCheck(session, queue, { durable: true });
          return;
        }
        await this.assertOrCheck(session, deadLetterQueueName(queue), { durable: true });
        await this.assertOrCheck(session, queue, { durable: true, arguments: mainQueueArguments(queue) });
      })();
      session.declared.set(queue, p);
      p.catch(() => session.declared.delete(queue));
    }
    return p;
  }

  private async assertOrCheck(session: Session, queue: string, options: Options.AssertQueue): Promise<void> {
    try {
      const channel = await this.adminChannel(session);
      await channel.assertQueue(queue, options);
    } catch (err) {
      if ((err as { code?: number }).code !== 406) throw err;
      // PRECONDITION_FAILED: the queue exists with other arguments (declared by hand or by an
      // older definition). Use it as it is.
      this.log("warn", { err, queue, arguments: options.arguments }, "queue exists with different arguments; using it as is");
      const channel = await this.adminChannel(session);
      await channel.checkQueue(queue);
    }
  }

  private ensureDelayQueue(session: Session, queue: string, bucketMs: number): Promise<void> {
    const name = `${queue}.retry.${bucketMs}`;
    const now = Date.now();
    const known = session.delayDeclared.get(name);
    if (known && now - known.at < DELAY_REDECLARE_MS) return known.promise;
    const promise = this.assertOrCheck(session, name, { durable: true, arguments: retryQueueArguments(queue, bucketMs) });
    session.delayDeclared.set(name, { promise, at: now });
    promise.catch(() => session.delayDeclared.delete(name));
    return promise;
  }

  // ------------------------------------------------------------------ publish

  async publish(
    queue: string,
    body: Buffer,
    options: { delayMs?: number; headers?: Record<string, string> } = {},
  ): Promise<void> {
    const session = this.liveSession();
    if (session.blocked) throw unavailable("message broker is blocking publishers (resource alarm)");
    try {
      await this.ensureQueue(session, queue);
      let routingKey = queue;
      if (options.delayMs !== undefined && options.delayMs > 0) {
        const bucket = delayBucketMs(options.delayMs);
        routingKey = `${queue}.retry.${bucket}`;
        await this.ensureDelayQueue(session, queue, bucket);
      }
      await this.publishConfirmed(session, routingKey, body, options.headers);
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (!session.alive) throw unavailable("message broker connection lost", err);
      throw err;
    }
  }

  private publishConfirmed(
    session: Session,
    routingKey: string,
    body: Buffer,
    headers: Record<string, string> | undefined,
  ): Promise<void> {
    if (!session.alive) return Promise.reject(unavailable("message broker connection lost"));
    const messageId = randomUUID();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        session.pending.delete(messageId);
        const returned = session.returned.delete(messageId);
        if (err) reject(err);
        else if (returned) {
          // A queue vanished (deleted by hand?): declare the topology again on the next publish.
          session.declared.clear();
          session.delayDeclared.clear();
          reject(new AppError("service_unavailable", `message to "${routingKey}" was unroutable (no such queue)`));
        }
        else resolve();
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
            if (err) settle(session.alive ? new AppError("service_unavailable", "message was not confirmed by the broker", { cause: err }) : unavailable("message broker connection lost", err));
            else settle(null);
          },
        );
      } catch (err) {
        settle(unavailable("message broker channel is closed", err));
      }
    });
  }

  // ------------------------------------------------------------------ consume

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
    const channel = await this.adminChannel(session);
    const reply = await channel.checkQueue(queue);
    return { ready: reply.messageCount, unacked: 0 };
  }

  async ping(): Promise<void> {
    const session = this.liveSession();
    const channel = await this.adminChannel(session);
    const first = this.options.queues[0];
    if (first !== undefined) {
      await channel.checkQueue(first);
    } else {
      const ch = await session.model.createChannel();
      await ch.close();
    }
  }

  /**
   * Fault injection for tests: destroys the TCP socket as a network failure would, so the adapter
   * goes through its connection-lost and reconnect path.
   */
  simulateConnectionLoss(): void {
    const session = this.session;
    if (!session) return;
    const stream = (session.model.connection as unknown as { stream?: { destroy(err?: Error): void } }).stream;
    if (stream) stream.destroy(new Error("simulated connection loss"));
    else void session.model.close();
  }

  /** Drain consumers, wait for outstanding confirms, then close the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    await Promise.allSettled([...this.consumers].map((c) => c.drain()));
    this.closing = true;
    const session = this.session;
    if (session?.alive) {
      try {
        await session.publisher.waitForConfirms();
      } catch {
        /* pending publishes already rejected */
      }
      session.alive = false;
      this.session = null;
      await session.model.close().catch(() => undefined);
      const error = unavailable("message queue is closed");
      for (const pending of session.pending.values()) pending.reject(error);
      session.pending.clear();
    }
    this.wakeBackoff?.();
    if (this.reconnecting) await this.reconnecting.catch(() => undefined);
    this.closed = true;
  }
}

/**
 * One consumer of one queue: its own channel with a bounded prefetch, handlers' verdicts turned
 * into ack / dead-letter / requeue, restarted on a new session after a reconnect (once the handlers
 * of the lost connection have finished, so the prefetch bound holds), and drained on request.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import type { Consumer, HandlerVerdict } from "../../domain/ports.js";
import type { Log, Session } from "./session.js";
import { ensureQueue } from "./topology.js";

export type MessageHandler = (
  body: Buffer,
  meta: { redelivered: boolean; headers: Record<string, string> },
) => Promise<HandlerVerdict>;

/** What a consumer needs from the queue that made it. */
export interface ConsumerOwner {
  readonly log: Log;
  readonly isClosing: boolean;
  forget(consumer: RabbitConsumer): void;
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

export class RabbitConsumer implements Consumer {
  private channel: Channel | null = null;
  private consumerTag: string | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private drained = false;
  private drainPromise: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private starting: Promise<void> | null = null;

  constructor(
    private readonly owner: ConsumerOwner,
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
      await ensureQueue(session, this.queue, this.owner.log);
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

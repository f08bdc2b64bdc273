/**
 * In-process MessageQueue for the embedded single-process mode (`ml-inference all` with no AMQP_URL).
 * Same semantics as the RabbitMQ adapter, held in memory (lost when the process exits):
 * - queues are created on first use; `Q.dead` receives dead_letter verdicts and can be consumed;
 * - publish copies the body and resolves once the message is enqueued (the "confirm");
 *   `delayMs` holds it on a timer, then enqueues it on Q (never earlier than the delay);
 * - each consumer holds at most `prefetch` messages in its handlers; consumers of one queue share
 *   its messages round-robin;
 * - verdicts: ack drops the message; dead_letter moves it to Q.dead (adding the string headers
 *   x-first-death-queue and x-first-death-reason: "rejected", as RabbitMQ does); requeue, or a
 *   handler that throws, puts it back at the head of Q with redelivered=true;
 * - stats reports ready and unacked (in handlers) exactly.
 */
import type { Consumer, ConsumeOptions, HandlerVerdict, MessageQueue, Outbox, QueueStats } from "../../domain/ports.js";
import { AppError } from "../../errors.js";

type Handler = (body: Buffer, meta: { redelivered: boolean; headers: Record<string, string> }) => Promise<HandlerVerdict>;

interface StoredMessage {
  body: Buffer;
  headers: Record<string, string>;
  redelivered: boolean;
}

interface QueueState {
  ready: StoredMessage[];
  /** read index into `ready` (array used as a queue without O(n) shift) */
  head: number;
  consumers: MemoryConsumer[];
  nextConsumer: number;
  unacked: number;
  dispatchScheduled: boolean;
}

class MemoryConsumer implements Consumer {
  inFlight = 0;
  drained = false;
  private readonly idleWaiters: Array<() => void> = [];
  private drainPromise: Promise<void> | null = null;

  constructor(
    private readonly owner: MemoryMessageQueue,
    readonly queue: string,
    readonly handler: Handler,
    readonly prefetch: number,
  ) {}

  get hasCapacity(): boolean {
    return !this.drained && this.inFlight < this.prefetch;
  }

  settled(): void {
    this.inFlight -= 1;
    if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  drain(): Promise<void> {
    if (this.drainPromise) return this.drainPromise;
    this.drained = true;
    this.owner.detach(this);
    this.drainPromise = this.inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    return this.drainPromise;
  }
}

export class MemoryMessageQueue implements MessageQueue {
  private readonly queues = new Map<string, QueueState>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly consumers = new Set<MemoryConsumer>();
  private closed = false;

  deadLetterQueueName(queue: string): string {
    return `${queue}.dead`;
  }

  private state(queue: string): QueueState {
    let s = this.queues.get(queue);
    if (!s) {
      s = { ready: [], head: 0, consumers: [], nextConsumer: 0, unacked: 0, dispatchScheduled: false };
      this.queues.set(queue, s);
    }
    return s;
  }

  private enqueue(queue: string, message: StoredMessage, atHead = false): void {
    const s = this.state(queue);
    if (atHead && s.head > 0) {
      s.head -= 1;
      s.ready[s.head] = message;
    } else if (atHead) {
      s.ready.unshift(message);
    } else {
      s.ready.push(message);
    }
    this.scheduleDispatch(queue, s);
  }

  private scheduleDispatch(queue: string, s: QueueState): void {
    if (s.dispatchScheduled || s.consumers.length === 0) return;
    s.dispatchScheduled = true;
    setImmediate(() => {
      s.dispatchScheduled = false;
      this.dispatch(queue, s);
    });
  }

  private dispatch(queue: string, s: QueueState): void {
    while (s.head < s.ready.length && s.consumers.length > 0) {
      // next consumer with capacity, round-robin
      let consumer: MemoryConsumer | undefined;
      for (let i = 0; i < s.consumers.length; i++) {
        const candidate = s.consumers[(s.nextConsumer + i) % s.consumers.length];
        if (candidate?.hasCapacity) {
          consumer = candidate;
          s.nextConsumer = (s.nextConsumer + i + 1) % s.consumers.length;
          break;
        }
      }
      if (!consumer) break;
      const message = s.ready[s.head] as StoredMessage;
      s.ready[s.head] = undefined as unknown as StoredMessage;
      s.head += 1;
      this.deliver(queue, s, consumer, message);
    }
    if (s.head > 1024 && s.head * 2 > s.ready.length) {
      s.ready = s.ready.slice(s.head);
      s.head = 0;
    } else if (s.head === s.ready.length) {
      s.ready = [];
      s.head = 0;
    }
  }

  private deliver(queue: string, s: QueueState, consumer: MemoryConsumer, message: StoredMessage): void {
    consumer.inFlight += 1;
    s.unacked += 1;
    const run = async (): Promise<HandlerVerdict> => {
      try {
        return await consumer.handler(Buffer.from(message.body), {
          redelivered: message.redelivered,
          headers: { ...message.headers },
        });
      } catch {
        return "requeue";
      }
    };
    void run().then((verdict) => {
      s.unacked -= 1;
      if (verdict === "dead_letter") {
        const headers = { ...message.headers };
        headers["x-first-death-queue"] ??= queue;
        headers["x-first-death-reason"] ??= "rejected";
        this.enqueue(this.deadLetterQueueName(queue), { body: message.body, headers, redelivered: false });
      } else if (verdict !== "ack") {
        this.enqueue(queue, { ...message, redelivered: true }, true);
      }
      consumer.settled();
      this.scheduleDispatch(queue, s);
    });
  }

  detach(consumer: MemoryConsumer): void {
    this.consumers.delete(consumer);
    const s = this.queues.get(consumer.queue);
    if (!s) return;
    const index = s.consumers.indexOf(consumer);
    if (index >= 0) s.consumers.splice(index, 1);
    if (s.nextConsumer >= s.consumers.length) s.nextConsumer = 0;
  }

  async publish(queue: string, body: Buffer, options: { delayMs?: number; headers?: Record<string, string> } = {}): Promise<void> {
    if (this.closed) throw new AppError("service_unavailable", "message queue is closed");
    const message: StoredMessage = { body: Buffer.from(body), headers: { ...(options.headers ?? {}) }, redelivered: false };
    const delay = options.delayMs ?? 0;
    if (delay > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.enqueue(queue, message);
      }, Math.ceil(delay) + 1); // +1: a Node timer may fire up to 1 ms early by Date.now()
      this.timers.add(timer);
      this.state(queue);
      return;
    }
    this.enqueue(queue, message);
  }

  async consume(queue: string, handler: Handler, options: ConsumeOptions): Promise<Consumer> {
    if (this.closed) throw new AppError("service_unavailable", "message queue is closed");
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) throw new RangeError("prefetch must be an integer ≥ 1");
    const consumer = new MemoryConsumer(this, queue, handler, options.prefetch);
    const s = this.state(queue);
    s.consumers.push(consumer);
    this.consumers.add(consumer);
    this.scheduleDispatch(queue, s);
    return consumer;
  }

  async stats(queue: string): Promise<QueueStats> {
    const s = this.queues.get(queue);
    if (!s) return { ready: 0, unacked: 0 };
    return { ready: s.ready.length - s.head, unacked: s.unacked };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new AppError("service_unavailable", "message queue is closed");
  }

  /**
   * This queue starts empty in every process: whatever the database still holds open is marked
   * unpublished, so the gateway's sweeper publishes it again. Returns how many requests that is.
   */
  async recover(ledger: Pick<Outbox, "unpublishOpen">): Promise<number> {
    return ledger.unpublishOpen();
  }

  /** Drains every consumer and drops delayed messages still waiting on timers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.consumers].map((c) => c.drain()));
  }
}

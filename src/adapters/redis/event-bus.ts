/**
 * EventBus over Redis pub/sub, fanning request events out to every API replica.
 *
 * One channel per request id: `${keyPrefix}events:<requestId>` (keyPrefix defaults to "").
 * Each bus holds two connections: one that PUBLISHes, and one subscriber connection on which every
 * local listener of a request id shares a single SUBSCRIBE; the last unsubscribe of a request id
 * UNSUBSCRIBEs. Incoming messages are parsed and validated with `requestEventSchema`; anything that
 * is not JSON, does not match, or names another request id is dropped. ioredis re-subscribes every
 * channel after a reconnect (events published while disconnected are lost: pub/sub keeps nothing,
 * which is why the API serves the final state from the database when a client connects).
 */
import { Redis } from "ioredis";
import { SharedSubscriptions } from "./shared-subscriptions.js";
import { requestEventSchema, type RequestEvent } from "../../domain/contracts.js";
import type { EventBus } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";

type Listener = (event: RequestEvent) => void;

export interface RedisEventBusOptions {
  url: string;
  keyPrefix?: string;
  logger?: Logger;
}

export class RedisEventBus implements EventBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly prefix: string;
  private readonly logger: Logger | undefined;
  private readonly channels: SharedSubscriptions<Listener>;
  private closed = false;

  constructor(options: RedisEventBusOptions) {
    this.prefix = options.keyPrefix ?? "";
    this.logger = options.logger;
    // Commands fail after a couple of reconnect attempts instead of waiting without end.
    const common = { maxRetriesPerRequest: 2, lazyConnect: false } as const;
    // Auto-pipelining: the final events of a batch of outcomes go out in one write.
    this.pub = new Redis(options.url, { ...common, enableAutoPipelining: true, connectionName: "event-bus-pub" });
    this.sub = new Redis(options.url, { ...common, connectionName: "event-bus-sub", autoResubscribe: true });
    this.channels = new SharedSubscriptions<Listener>(this.sub, () => this.closed);
    for (const [name, conn] of [
      ["publisher", this.pub],
      ["subscriber", this.sub],
    ] as const) {
      conn.on("error", (err: Error) => this.logger?.warn({ err, connection: name }, "redis event bus connection error"));
    }
    this.sub.on("messageBuffer", (channel: Buffer, message: Buffer) => this.onMessage(channel.toString("utf8"), message));
  }

  /** Creates the bus and waits until both connections answer. */
  static async create(options: RedisEventBusOptions): Promise<RedisEventBus> {
    const bus = new RedisEventBus(options);
    try {
      await Promise.all([bus.pub.ping(), bus.sub.ping()]);
    } catch (err) {
      await bus.close();
      throw err;
    }
    return bus;
  }

  channelName(requestId: string): string {
    return `${this.prefix}events:${requestId}`;
  }

  private onMessage(channel: string, message: Buffer): void {
    const listeners = this.channels.listenersOf(channel);
    if (listeners.length === 0) return;
    let data: unknown;
    try {
      data = JSON.parse(message.toString("utf8"));
    } catch {
      this.logger?.warn({ channel }, "dropped an event that is not JSON");
      return;
    }
    const parsed = requestEventSchema.safeParse(data);
    if (!parsed.success || this.channelName(parsed.data.request_id) !== channel) {
      this.logger?.warn({ channel }, "dropped an invalid event");
      return;
    }
    for (const listener of listeners) {
      if (!this.channels.has(channel, listener)) continue;
      try {
        // with several listeners each gets its own copy
        listener(listeners.length > 1 ? structuredClone(parsed.data) : parsed.data);
      } catch (err) {
        this.logger?.warn({ err, channel }, "event listener threw");
      }
    }
  }

  async publish(event: RequestEvent): Promise<void> {
    if (this.closed) throw new Error("event bus is closed");
    await this.pub.publish(this.channelName(event.request_id), JSON.stringify(event));
  }

  async subscribe(requestId: string, listener: Listener): Promise<() => Promise<void>> {
    if (this.closed) throw new Error("event bus is closed");
    const channel = this.channelName(requestId);
    // A wrapper per subscription, so the same function subscribed twice is two subscriptions.
    const own: Listener = (event) => listener(event);
    return this.channels.add(channel, own);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    await Promise.allSettled([this.sub.quit(), this.pub.quit()]);
    this.sub.disconnect();
    this.pub.disconnect();
  }
}


/**
 * RequestStreams over Redis Streams: any replica appends, any replica serves a reader.
 *
 * Key layout (prefix = keyPrefix option, default ""):
 *   <prefix>stream:{<requestId>}        stream; entry id <seq>-1, field e = the event as JSON;
 *                                       newest `bound` entries kept, PEXPIRE `ttlMs` after each append
 *   <prefix>stream-live:{<requestId>}   pub/sub channel; one message per append: its events as a JSON array
 * The hash tag keeps a request's key on one slot, so the script runs unchanged on Redis Cluster.
 *
 * An append is one Lua script (lua/stream-append.lua): XADD, trim, PEXPIRE and PUBLISH at once, so
 * a live message never names an event the stream lacks. Events at or below the stream's newest seq
 * are skipped (a retried append is idempotent). Ids carry the seq, so `read(after)` is one XRANGE
 * from the exclusive id `(<after>-1`.
 *
 * Two connections: commands go over a bounded one (connection.ts: while Redis is down a command
 * fails at once, one with no answer fails after a timeout); every local watcher of a request shares
 * one SUBSCRIBE on the subscriber connection, the last unsubscribe UNSUBSCRIBEs, and ioredis
 * subscribes again after a reconnect (messages published meanwhile are lost: pub/sub keeps nothing,
 * which is why readers read the stream, see followStream).
 *
 * Everything read back, from the stream or the channel, is validated; what does not match is
 * dropped with a warning. The Lua file is read next to this module: a build copies lua/*.lua along.
 */
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type { RequestStreams, StreamEvent } from "../../domain/ports.js";
import {
  checkedAppendBatch,
  DEFAULT_STREAM_BOUND,
  DEFAULT_STREAM_TTL_MS,
  parseLiveBatch,
  parseStreamEventJson,
} from "../../domain/stream-events.js";
import type { Logger } from "../../observability/logger.js";
import { SharedSubscriptions } from "./shared-subscriptions.js";
import { openBoundedRedis, readyWithin } from "./connection.js";

export interface RedisRequestStreamsOptions {
  url: string;
  /** Prepended to every key and channel, e.g. "mli:" (default ""). */
  keyPrefix?: string;
  /** Events a stream keeps, newest first (default 4096). */
  bound?: number;
  /** How long a stream is kept after its last append, in milliseconds (default 15 minutes). */
  ttlMs?: number;
  logger?: Logger;
}

/** How long create() waits for the connections before giving up. */
const CREATE_WAIT_MS = 5_000;

type Listener = (events: StreamEvent[]) => void;

interface StreamCommands {
  mlStreamAppend(key: string, bound: number, ttlMs: number, channel: string, ...seqAndJson: string[]): Promise<number>;
}

/** XRANGE's reply: [id, [field, value, ...]] per entry. */
type StreamEntry = [id: string, fields: string[]];

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export class RedisRequestStreams implements RequestStreams {
  private readonly commands: Redis;
  private readonly sub: Redis;
  private readonly prefix: string;
  private readonly bound: number;
  private readonly ttlMs: number;
  private readonly logger: Logger | undefined;
  private readonly channels: SharedSubscriptions<Listener>;
  private closed = false;

  constructor(options: RedisRequestStreamsOptions) {
    this.prefix = options.keyPrefix ?? "";
    this.bound = positiveInteger("bound", options.bound ?? DEFAULT_STREAM_BOUND);
    this.ttlMs = positiveInteger("ttlMs", options.ttlMs ?? DEFAULT_STREAM_TTL_MS);
    this.logger = options.logger;
    this.commands = openBoundedRedis(options.url, "request-streams");
    // Bounded too: a watch while Redis is down fails at once, and the subscriptions come back with it.
    this.sub = openBoundedRedis(options.url, "request-streams-sub");
    this.channels = new SharedSubscriptions<Listener>(this.sub, () => this.closed);
    for (const [name, conn] of [
      ["commands", this.commands],
      ["subscriber", this.sub],
    ] as const) {
      conn.on("error", (err: Error) => this.logger?.warn({ err, connection: name }, "redis request streams connection error"));
    }
    this.commands.defineCommand("mlStreamAppend", {
      numberOfKeys: 1,
      lua: readFileSync(new URL("./lua/stream-append.lua", import.meta.url), "utf8"),
    });
    this.sub.on("messageBuffer", (channel: Buffer, message: Buffer) => this.onMessage(channel.toString("utf8"), message));
  }

  /** Creates the streams and waits (at most a few seconds) until both connections answer. */
  static async create(options: RedisRequestStreamsOptions): Promise<RedisRequestStreams> {
    const streams = new RedisRequestStreams(options);
    try {
      const ready = await Promise.all([readyWithin(streams.commands, CREATE_WAIT_MS), readyWithin(streams.sub, CREATE_WAIT_MS)]);
      if (!ready.every(Boolean)) throw new Error(`Redis did not answer within ${CREATE_WAIT_MS} ms (${options.url})`);
      await Promise.all([streams.commands.ping(), streams.sub.ping()]);
    } catch (err) {
      await streams.close();
      throw err;
    }
    return streams;
  }

  /** Key of a request's stream (exposed for tests and operators). */
  streamKey(requestId: string): string {
    return `${this.prefix}stream:{${requestId}}`;
  }

  /** Channel of a request's live messages (exposed for tests and operators). */
  liveChannel(requestId: string): string {
    return `${this.prefix}stream-live:{${requestId}}`;
  }

  async append(requestId: string, events: StreamEvent[]): Promise<void> {
    this.assertOpen();
    const batch = checkedAppendBatch(events);
    if (batch.length === 0) return;
    const pairs = batch.flatMap((event) => [String(event.seq), JSON.stringify(event)]);
    const script = this.commands as unknown as StreamCommands;
    await script.mlStreamAppend(this.streamKey(requestId), this.bound, this.ttlMs, this.liveChannel(requestId), ...pairs);
  }

  async read(requestId: string, after: number, limit: number): Promise<StreamEvent[]> {
    this.assertOpen();
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`after must be a non-negative integer, got ${after}`);
    if (!Number.isSafeInteger(limit) || limit < 1) return [];
    const key = this.streamKey(requestId);
    const entries = (await this.commands.xrange(key, `(${after}-1`, "+", "COUNT", limit)) as StreamEntry[];
    const events: StreamEvent[] = [];
    for (const [id, fields] of entries) {
      const event = this.entryEvent(id, fields);
      if (event) events.push(event);
      else this.logger?.warn({ key, id }, "dropped an invalid stream entry");
    }
    return events;
  }

  /** The entry's event, if its field `e` is a valid event whose seq is the one in the entry's id. */
  private entryEvent(id: string, fields: string[]): StreamEvent | null {
    const at = fields.indexOf("e");
    const raw = at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
    const event = raw === undefined ? null : parseStreamEventJson(raw);
    return event && `${event.seq}-1` === id ? event : null;
  }

  async watch(requestId: string, listener: Listener): Promise<() => Promise<void>> {
    this.assertOpen();
    const channel = this.liveChannel(requestId);
    // A wrapper per watch, so the same function watching twice is two watches.
    const own: Listener = (events) => listener(events);
    return this.channels.add(channel, own);
  }

  private onMessage(channel: string, message: Buffer): void {
    const listeners = this.channels.listenersOf(channel);
    if (listeners.length === 0) return;
    const { events, dropped } = parseLiveBatch(message.toString("utf8"));
    if (dropped > 0) this.logger?.warn({ channel, dropped }, "dropped invalid live stream events");
    if (events.length === 0) return;
    for (const listener of listeners) {
      if (!this.channels.has(channel, listener)) continue; // unwatched by an earlier listener
      try {
        // with several listeners each gets its own copy
        listener(listeners.length > 1 ? structuredClone(events) : events);
      } catch (err) {
        this.logger?.warn({ err, channel }, "stream listener threw");
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("request streams are closed");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    await Promise.allSettled([this.sub.quit(), this.commands.quit()]);
    this.sub.disconnect();
    this.commands.disconnect();
  }
}

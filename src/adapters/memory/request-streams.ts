/**
 * In-process RequestStreams with the Redis adapter's semantics: a stream keeps its newest `bound`
 * events for `ttlMs` after its last append, an event at or below the stream's newest seq is skipped
 * (a retried append is idempotent), and each append's events reach live watchers as one batch.
 *
 * Instances over one MemoryStreamHub share streams and watchers, as replicas sharing one Redis do;
 * `new MemoryRequestStreams()` gets a hub of its own. Events are stored and delivered as JSON and
 * validated when read back, so nobody shares objects with the writer and both adapters hand out the
 * same shapes. Watchers hear an append on a later tick (setImmediate), as from a server: append
 * never runs listeners inside its caller. Time comes from the hub's clock, injectable for tests.
 */
import { ListenerSets } from "./listener-sets.js";
import type { RequestStreams, StreamEvent } from "../../domain/ports.js";
import {
  checkedAppendBatch,
  DEFAULT_STREAM_BOUND,
  DEFAULT_STREAM_TTL_MS,
  newerThan,
  parseLiveBatch,
  parseStreamEventJson,
} from "../../domain/stream-events.js";


type Listener = (events: StreamEvent[]) => void;

interface StoredStream {
  /** Oldest first, at most `bound` of the appending instance. */
  entries: Array<{ seq: number; json: string }>;
  /** Newest seq ever added (kept when trimming, like the newest id of a Redis stream). */
  newest: number;
  expiresAt: number;
}

export class MemoryStreamHub {
  readonly now: () => number;
  /** In order of last append, so the ones that expire first come first (see sweep). */
  private readonly streams = new Map<string, StoredStream>();
  private readonly listeners = new ListenerSets<Listener>();

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  /** The stream if it has not expired; an expired one is removed here. */
  private live(requestId: string): StoredStream | undefined {
    const stream = this.streams.get(requestId);
    if (stream && stream.expiresAt <= this.now()) {
      this.streams.delete(requestId);
      return undefined;
    }
    return stream;
  }

  /**
   * Removes expired streams nobody reads any more. The map is in order of last append, so with one
   * TTL the expired ones are at its front; with several the stragglers go at a later append or read.
   */
  private sweep(): void {
    const now = this.now();
    for (const [requestId, stream] of this.streams) {
      if (stream.expiresAt > now) break;
      this.streams.delete(requestId);
    }
  }

  /** Stores the events newer than the stream's newest; returns them as JSON (empty: nothing added). */
  append(requestId: string, batch: StreamEvent[], bound: number, ttlMs: number): string[] {
    this.sweep();
    const stream = this.live(requestId) ?? { entries: [], newest: 0, expiresAt: 0 };
    const added = newerThan(batch, stream.newest).map((event) => ({ seq: event.seq, json: JSON.stringify(event) }));
    stream.entries.push(...added);
    if (stream.entries.length > bound) stream.entries.splice(0, stream.entries.length - bound);
    stream.newest = added.at(-1)?.seq ?? stream.newest;
    stream.expiresAt = this.now() + ttlMs;
    // Re-inserted, so the map stays in order of last append.
    this.streams.delete(requestId);
    this.streams.set(requestId, stream);
    return added.map((entry) => entry.json);
  }

  /** Stored events (as JSON) with seq > after, oldest first, at most limit. */
  read(requestId: string, after: number, limit: number): string[] {
    const stream = this.live(requestId);
    if (!stream) return [];
    const found: string[] = [];
    for (const entry of stream.entries) {
      if (found.length >= limit) break;
      if (entry.seq > after) found.push(entry.json);
    }
    return found;
  }

  /** Milliseconds the request's stream has left, or null when there is none (like PTTL; for tests). */
  ttlOf(requestId: string): number | null {
    const stream = this.live(requestId);
    return stream ? stream.expiresAt - this.now() : null;
  }

  add(requestId: string, listener: Listener): void {
    this.listeners.add(requestId, listener);
  }

  remove(requestId: string, listener: Listener): void {
    this.listeners.remove(requestId, listener);
  }

  /**
   * Delivers a live message (a JSON array of events) to the request's watchers now, each its own
   * parse. Invalid events are dropped, as the Redis adapter drops them; exposed so tests can send one.
   */
  emit(requestId: string, payload: string): void {
    this.listeners.each(requestId, (listener) => {
      const { events } = parseLiveBatch(payload);
      if (events.length > 0) listener(events);
    });
  }

  /** Number of request ids with at least one watcher (for tests and metrics). */
  get watchedRequests(): number {
    return this.listeners.size;
  }
}

export interface MemoryRequestStreamsOptions {
  /** Shared by the instances that stand for replicas; default: a hub of its own. */
  hub?: MemoryStreamHub;
  /** The clock of the hub of its own (a shared hub has its own clock: give it there). */
  now?: () => number;
  /** Events a stream keeps, newest first (default 4096). */
  bound?: number;
  /** How long a stream is kept after its last append, in milliseconds (default 15 minutes). */
  ttlMs?: number;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export class MemoryRequestStreams implements RequestStreams {
  readonly hub: MemoryStreamHub;
  private readonly bound: number;
  private readonly ttlMs: number;
  private readonly mine = new Set<{ requestId: string; listener: Listener }>();
  private closed = false;

  constructor(options: MemoryRequestStreamsOptions = {}) {
    if (options.hub && options.now) throw new TypeError("give the clock to the shared hub, not to one instance");
    this.hub = options.hub ?? new MemoryStreamHub({ now: options.now });
    this.bound = positiveInteger("bound", options.bound ?? DEFAULT_STREAM_BOUND);
    this.ttlMs = positiveInteger("ttlMs", options.ttlMs ?? DEFAULT_STREAM_TTL_MS);
  }

  async append(requestId: string, events: StreamEvent[]): Promise<void> {
    this.assertOpen();
    const batch = checkedAppendBatch(events);
    if (batch.length === 0) return;
    const added = this.hub.append(requestId, batch, this.bound, this.ttlMs);
    if (added.length === 0) return;
    const payload = `[${added.join(",")}]`;
    setImmediate(() => this.hub.emit(requestId, payload));
  }

  async read(requestId: string, after: number, limit: number): Promise<StreamEvent[]> {
    this.assertOpen();
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`after must be a non-negative integer, got ${after}`);
    if (!Number.isSafeInteger(limit) || limit < 1) return [];
    return this.hub
      .read(requestId, after, limit)
      .map(parseStreamEventJson)
      .filter((event): event is StreamEvent => event !== null);
  }

  async watch(requestId: string, listener: Listener): Promise<() => Promise<void>> {
    this.assertOpen();
    // A wrapper per watch, so the same function watching twice is two watches.
    const entry = { requestId, listener: (events: StreamEvent[]) => listener(events) };
    this.mine.add(entry);
    this.hub.add(requestId, entry.listener);
    return async () => {
      if (!this.mine.delete(entry)) return;
      this.hub.remove(requestId, entry.listener);
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("request streams are closed");
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const { requestId, listener } of this.mine) this.hub.remove(requestId, listener);
    this.mine.clear();
  }
}

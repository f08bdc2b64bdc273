/**
 * Follows a request's stream from a seq a reader saw last: every event with seq > after, once, in
 * seq order, with no gap, until the `final` event.
 *
 * Watch first, then read: an event appended before the watch is in the store (the catch-up read
 * sees it, a final among them too), one appended after reaches the listener, and one appended in
 * between is both (the copy at or below the last seq yielded is dropped). Live batches are buffered
 * until the consumer takes them; a batch that starts beyond last+1 (a live message lost, or
 * delivered out of turn) is filled in from the store first.
 *
 * A slow consumer costs no more than `bufferLimit` buffered events: a batch that would make more
 * wait is dropped with the whole buffer, and the follower reads from the store (page by page) until
 * caught up, then takes live events again. The store keeps every event the follower dropped, as
 * long as its bound and TTL allow: when it no longer holds the next event (trimmed, expired, never
 * stored), the follower fails with StreamGapError rather than skip it, so the caller can serve the
 * outcome from the durable record instead.
 *
 * Pub/sub keeps nothing for a subscriber that is reconnecting, so when no live event came for
 * `idleReadMs` the follower reads the store once: a final lost that way ends the follow late, not never.
 *
 * It starts watching on the consumer's first `next()`, and stops when it fails, is aborted (it then
 * ends without an error, even while the consumer holds an event), the consumer breaks out of its
 * loop, or just before it yields the final (nothing can follow it).
 *
 * A stream that never gets a final (expired, or a request nobody runs) is followed until the
 * signal aborts: the port cannot tell "no events yet" from "no stream any more".
 */
import type { RequestStreams, StreamEvent } from "./ports.js";

export interface FollowStreamOptions {
  /** Ends the follow (without an error) and stops watching. */
  signal?: AbortSignal;
  /** Live events that may wait for the consumer before they are dropped for reads (default 256). */
  bufferLimit?: number;
  /** Events per read from the store (default 256). */
  pageSize?: number;
  /** Without a live event for this long, read the store once (default 5000 ms). */
  idleReadMs?: number;
}

/** What a follow did, for tests and metrics. */
export interface FollowStats {
  /** The most live events that waited in the buffer at once; never above bufferLimit. */
  maxBuffered: number;
  /** Times the buffer was dropped because the consumer fell behind. */
  overflows: number;
  /** Reads from the store. */
  reads: number;
}

export type FollowedStream = AsyncGenerator<StreamEvent, void, undefined> & { readonly stats: Readonly<FollowStats> };

/** The store no longer holds the next event the reader needs. */
export class StreamGapError extends Error {
  constructor(
    readonly requestId: string,
    /** The seq the follower needed next. */
    readonly expected: number,
    /** The seq the store (or a live batch) offered instead; null when it offered nothing newer. */
    readonly found: number | null,
  ) {
    super(`stream of ${requestId} lacks event ${expected} (${found === null ? "nothing newer is stored" : `next stored is ${found}`})`);
    this.name = "StreamGapError";
  }
}

const DEFAULT_BUFFER_LIMIT = 256;
const DEFAULT_PAGE_SIZE = 256;
const DEFAULT_IDLE_READ_MS = 5_000;

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export function followStream(streams: RequestStreams, requestId: string, after: number, options: FollowStreamOptions = {}): FollowedStream {
  if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`after must be a non-negative integer, got ${after}`);
  const settings = {
    signal: options.signal,
    bufferLimit: positiveInteger("bufferLimit", options.bufferLimit ?? DEFAULT_BUFFER_LIMIT),
    pageSize: positiveInteger("pageSize", options.pageSize ?? DEFAULT_PAGE_SIZE),
    idleReadMs: positiveInteger("idleReadMs", options.idleReadMs ?? DEFAULT_IDLE_READ_MS),
  };
  const stats: FollowStats = { maxBuffered: 0, overflows: 0, reads: 0 };
  return Object.assign(follow(streams, requestId, after, settings, stats), { stats });
}

async function* follow(
  streams: RequestStreams,
  requestId: string,
  after: number,
  settings: { signal: AbortSignal | undefined; bufferLimit: number; pageSize: number; idleReadMs: number },
  stats: FollowStats,
): AsyncGenerator<StreamEvent, void, undefined> {
  const { signal, bufferLimit, pageSize, idleReadMs } = settings;
  if (signal?.aborted) return;

  // Live events not yet yielded, in arrival order (at most bufferLimit).
  let buffer: StreamEvent[] = [];
  // The next step reads the store: at the start, after an overflow, for a gap, when idle.
  let readNext = true;
  let wake: (() => void) | null = null;
  let unwatched: Promise<void> | null = null;
  const wakeUp = () => {
    const resolve = wake;
    wake = null;
    resolve?.();
  };

  const unwatch = await streams.watch(requestId, (events) => {
    if (unwatched) return;
    if (buffer.length + events.length > bufferLimit) {
      // The consumer is behind: forget what waits, the store has it.
      buffer = [];
      stats.overflows++;
      readNext = true;
    } else {
      buffer.push(...events);
      stats.maxBuffered = Math.max(stats.maxBuffered, buffer.length);
    }
    wakeUp();
  });
  // Once, from whichever comes first: the end, a final about to be yielded, an abort, the consumer leaving.
  const stopWatching = () => (unwatched ??= unwatch());
  // An abort stops the watch at once, even while the consumer holds an event and calls no next().
  const onAbort = () => {
    stopWatching().catch(() => undefined); // the finally below awaits it, and fails with its error
    wakeUp();
  };
  signal?.addEventListener("abort", onAbort, { once: true });

  try {
    let last = after;
    // A buffered seq beyond last+1 that sent us to the store; if the reads end short of it, it is lost.
    let gapBefore: number | null = null;
    while (!signal?.aborted) {
      if (readNext) {
        readNext = false;
        const page = await streams.read(requestId, last, pageSize);
        stats.reads++;
        for (const event of page) {
          if (signal?.aborted) return;
          if (event.seq <= last) continue;
          if (event.seq !== last + 1) throw new StreamGapError(requestId, last + 1, event.seq);
          if (event.type === "final") await stopWatching();
          yield event;
          last = event.seq;
          if (event.type === "final") return;
        }
        if (page.length >= pageSize) {
          readNext = true; // more may be stored
        } else if (gapBefore !== null) {
          if (last < gapBefore - 1) throw new StreamGapError(requestId, last + 1, null);
          gapBefore = null;
        }
        continue;
      }

      const next = buffer[0];
      if (!next) {
        const idle = await waitForWake(idleReadMs);
        if (idle) readNext = true;
        continue;
      }
      if (next.seq <= last) {
        buffer.shift(); // already yielded (from the store, or a duplicate delivery)
        continue;
      }
      if (next.seq > last + 1) {
        gapBefore = next.seq;
        readNext = true;
        continue;
      }
      buffer.shift();
      if (next.type === "final") await stopWatching();
      yield next;
      last = next.seq;
      if (next.type === "final") return;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    wake = null;
    buffer = [];
    await stopWatching();
  }

  /** Resolves on a live batch or an abort (false), or after `ms` without either (true). */
  function waitForWake(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = null;
        resolve(true);
      }, ms);
      wake = () => {
        clearTimeout(timer);
        resolve(false);
      };
    });
  }
}

/**
 * Appends a streamed request's token deltas to its stream, numbered 1, 2, … in order, without one
 * round trip per token. The first delta goes out at once (time to first token); after it, the text
 * that arrives within `flushMs` of the last append is gathered into one delta, and whatever arrives
 * while an append is in flight goes out with the next. One stream event per few tokens instead of
 * one per token is what every reader downstream pays for (Redis, pub/sub, each gateway's SSE
 * writes), while a reader sees text at most `flushMs` later. The model never waits on it (add()
 * returns at once); flush() waits until every delta is stored and answers the last seq, which the
 * outcome carries so the final event comes after it.
 */
import type { RequestStreams, StreamEvent } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";

export class DeltaAppender {
  private seq = 0;
  private pendingText = "";
  private pending: StreamEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastAppend = -Infinity;
  private failed = false;

  constructor(
    private readonly streams: RequestStreams,
    private readonly requestId: string,
    private readonly log: Logger,
    private readonly flushMs = 0,
  ) {}

  add(text: string): void {
    if (text.length === 0) return;
    this.pendingText += text;
    if (this.inFlight || this.timer) return;
    const wait = this.lastAppend + this.flushMs - performance.now();
    if (wait <= 0) this.send();
    else this.timer = setTimeout(() => this.send(), wait);
  }

  /** Waits until every delta added so far is stored (or given up on); the last seq. */
  async flush(): Promise<number> {
    this.send();
    while (this.inFlight) await this.inFlight;
    return this.seq;
  }

  /** The text gathered so far becomes the next delta, appended now or right after the one in flight. */
  private send(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pendingText.length > 0) {
      this.pending.push({ seq: ++this.seq, type: "delta", text: this.pendingText });
      this.pendingText = "";
    }
    if (this.pending.length > 0) this.inFlight ??= this.pump();
  }

  private async pump(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      this.lastAppend = performance.now();
      try {
        await this.streams.append(this.requestId, batch);
      } catch (error) {
        // Readers then miss these deltas live; the stored outcome still holds the whole text.
        if (!this.failed) this.log.warn({ err: error, request_id: this.requestId }, "could not append token deltas to the stream");
        this.failed = true;
      }
    }
    this.inFlight = undefined;
    // Text that came during the append waits out the rest of its interval (or goes now).
    if (this.pendingText.length > 0) {
      const wait = this.lastAppend + this.flushMs - performance.now();
      if (wait <= 0) this.send();
      else this.timer ??= setTimeout(() => this.send(), wait);
    }
  }
}

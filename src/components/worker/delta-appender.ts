/**
 * Appends a streamed request's token deltas to its stream, numbered 1, 2, … in order, without one
 * round trip per token: the deltas that arrive while an append is in flight go out together in the
 * next. The model never waits on it (add() returns at once); flush() waits until every delta is
 * stored and answers the last seq, which the outcome carries so the final event comes after it.
 */
import type { RequestStreams, StreamEvent } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";

export class DeltaAppender {
  private seq = 0;
  private pending: StreamEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private failed = false;

  constructor(
    private readonly streams: RequestStreams,
    private readonly requestId: string,
    private readonly log: Logger,
  ) {}

  add(text: string): void {
    if (text.length === 0) return;
    this.pending.push({ seq: ++this.seq, type: "delta", text });
    this.inFlight ??= this.pump();
  }

  /** Waits until every delta added so far is stored (or given up on); the last seq. */
  async flush(): Promise<number> {
    while (this.inFlight) await this.inFlight;
    return this.seq;
  }

  private async pump(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.streams.append(this.requestId, batch);
      } catch (error) {
        // Readers then miss these deltas live; the stored outcome still holds the whole text.
        if (!this.failed) this.log.warn({ err: error, request_id: this.requestId }, "could not append token deltas to the stream");
        this.failed = true;
      }
    }
    this.inFlight = undefined;
  }
}

/**
 * Server-Sent Events read incrementally from a fetch body, as the WHATWG EventSource parser does:
 * an event may arrive split across any number of chunks (mid-line, mid-"\r\n", mid-UTF-8 character),
 * so bytes are decoded with a streaming TextDecoder and lines are only interpreted once complete.
 * Pure apart from reading the stream it is given; the client (index.ts) decides what events mean.
 */

export interface SseEvent {
  /** The `event:` field; "message" when the block names none (as EventSource does). */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last `id:` seen on this stream so far (ids persist across events, per the spec). */
  id: string | undefined;
}

/**
 * Line-level state machine. `push` takes decoded text in arbitrary pieces and returns the events
 * completed by it; what is left of an unfinished line or event waits for the next piece.
 */
export class SseParser {
  private buffer = "";
  /** A chunk ended in "\r": if the next starts with "\n" that "\n" belongs to the same line break. */
  private pendingCr = false;
  private eventName = "";
  private dataLines: string[] = [];
  private hasData = false;
  private lastId: string | undefined;
  /** The latest `retry:` value in milliseconds (the server's reconnection delay). */
  retryMs: number | undefined;

  constructor(lastEventId?: string) {
    this.lastId = lastEventId;
  }

  get lastEventId(): string | undefined {
    return this.lastId;
  }

  push(text: string): SseEvent[] {
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (ch === 13) {
        if (i + 1 === this.buffer.length) this.pendingCr = true;
        else if (this.buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** One complete line; an empty one dispatches the event gathered so far. */
  private line(line: string): SseEvent | undefined {
    if (line === "") {
      const event = this.hasData ? { event: this.eventName || "message", data: this.dataLines.join("\n"), id: this.lastId } : undefined;
      this.eventName = "";
      this.dataLines = [];
      this.hasData = false;
      return event;
    }
    if (line.startsWith(":")) return undefined; // a comment (the platform's heartbeats)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventName = value;
        break;
      case "data":
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored, as the spec says
    }
    return undefined;
  }
}

/**
 * The events of an SSE body as they arrive. Ends when the body ends (an event left unfinished by
 * the server is dropped, as EventSource drops it); throws what the body's reader throws (a reset
 * connection, an abort), so the caller can tell a clean end from a broken stream.
 */
export async function* readSse(body: ReadableStream<Uint8Array>, parser: SseParser = new SseParser()): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
  } finally {
    // Leaving early (a final event, a break in the caller's loop) must free the connection.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

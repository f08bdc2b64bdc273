/**
 * The SSE parser against the ways a stream really arrives: an event cut at any character (inside
 * a field name, between "\r" and "\n", inside a multi-byte UTF-8 character), several events in one
 * chunk, comments (the platform's heartbeats) and `id` carried across events.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readSse, SseParser, type SseEvent } from "./sse.js";

/** What the platform's token stream sends (token-events.ts), with a heartbeat and non-ASCII text. */
const STREAM =
  "retry: 2000\n\n" +
  ': heartbeat\n\n' +
  'id: 1\nevent: token\ndata: {"request_id":"r","seq":1,"text":"Once"}\n\n' +
  'id: 2\nevent: token\ndata: {"request_id":"r","seq":2,"text":" upon ü 🐉"}\n\n' +
  ": heartbeat\n\n" +
  'id: 3\nevent: completed\ndata: {"request_id":"r","status":"completed"}\n\n';

const EXPECTED: SseEvent[] = [
  { event: "token", id: "1", data: '{"request_id":"r","seq":1,"text":"Once"}' },
  { event: "token", id: "2", data: '{"request_id":"r","seq":2,"text":" upon ü 🐉"}' },
  { event: "completed", id: "3", data: '{"request_id":"r","status":"completed"}' },
];

function parseInPieces(text: string, cuts: number[]): { events: SseEvent[]; parser: SseParser } {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  let from = 0;
  for (const cut of [...cuts, text.length]) {
    events.push(...parser.push(text.slice(from, cut)));
    from = cut;
  }
  return { events, parser };
}

function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>, parser?: SseParser): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of readSse(body, parser)) events.push(event);
  return events;
}

describe("SSE parsing", () => {
  it("one chunk: every event, heartbeats skipped, retry read", () => {
    const { events, parser } = parseInPieces(STREAM, []);
    assert.deepEqual(events, EXPECTED);
    assert.equal(parser.retryMs, 2000);
  });

  it("split in two at every character gives the same events", () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      assert.deepEqual(parseInPieces(STREAM, [cut]).events, EXPECTED, `cut at ${cut}: ${JSON.stringify(STREAM.slice(0, cut))}`);
    }
  });

  it("one character at a time gives the same events", () => {
    const cuts = Array.from({ length: STREAM.length }, (_, i) => i);
    assert.deepEqual(parseInPieces(STREAM, cuts).events, EXPECTED);
  });

  it("CRLF and CR line ends, also with the CRLF pair split between chunks", () => {
    for (const eol of ["\r\n", "\r"]) {
      const text = STREAM.replaceAll("\n", eol);
      for (let cut = 0; cut <= text.length; cut++) {
        assert.deepEqual(parseInPieces(text, [cut]).events, EXPECTED, `${JSON.stringify(eol)} cut at ${cut}`);
      }
    }
  });

  it("multi-line data joins with \\n; no space after the colon; an event with no name is a message", () => {
    const { events } = parseInPieces("data:first\ndata: second\n\nevent:x\ndata\n\n", [9]);
    assert.deepEqual(events, [
      { event: "message", id: undefined, data: "first\nsecond" },
      { event: "x", id: undefined, data: "" },
    ]);
  });

  it("a block without data dispatches nothing; id persists; a resumed parser starts from Last-Event-ID", () => {
    const parser = new SseParser("7");
    assert.deepEqual(parser.push("id: 8\n\n"), []);
    assert.equal(parser.lastEventId, "8");
    assert.deepEqual(parser.push("event: token\ndata: a\n\n"), [{ event: "token", id: "8", data: "a" }]);
  });

  it("an unfinished event at the end of the body is dropped, not dispatched half-read", () => {
    assert.deepEqual(parseInPieces('id: 1\nevent: token\ndata: {"seq":1}', []).events, []);
  });

  it("from a body whose bytes are cut inside multi-byte UTF-8 characters", async () => {
    const bytes = new TextEncoder().encode(STREAM);
    const dragon = bytes.indexOf(0xf0); // first byte of the 4-byte 🐉
    for (const cut of [dragon + 1, dragon + 2, dragon + 3, bytes.indexOf(0xc3) + 1]) {
      assert.deepEqual(await collect(bodyOf([bytes.slice(0, cut), bytes.slice(cut)])), EXPECTED, `byte cut at ${cut}`);
    }
    assert.deepEqual(await collect(bodyOf(Array.from(bytes, (b) => Uint8Array.of(b)))), EXPECTED, "a byte at a time");
  });

  it("leaving early cancels the body (the connection is freed)", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode("event: token\ndata: a\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const event of readSse(body)) {
      assert.equal(event.data, "a");
      break;
    }
    assert.equal(cancelled, true);
  });
});

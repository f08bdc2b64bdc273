/**
 * The worker's response parser: every framing (Content-Length, chunked with extensions and
 * trailers, close-delimited, none), 1xx answers skipped, the connection's reuse, malformed bytes
 * refused; and the same response whatever pieces the socket splits it into (fast-check).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HttpProtocolError, HttpResponseParser, MAX_HEAD_BYTES, type ParsedResponse } from "./http-response-parser.js";

const b = (s: string) => Buffer.from(s, "utf8");

/** Feeds `raw` cut at `cuts` (byte offsets); returns the parsed response, or undefined if incomplete. */
function parseInPieces(raw: Buffer, cuts: number[] = [], ended = false): ParsedResponse | undefined {
  const parser = new HttpResponseParser();
  const points = [...new Set(cuts.map((c) => c % (raw.length + 1)))].sort((x, y) => x - y);
  let at = 0;
  let result: ParsedResponse | undefined;
  for (const point of [...points, raw.length]) {
    if (point <= at) continue;
    result = parser.feed(raw.subarray(at, point)) ?? result;
    at = point;
  }
  return ended ? parser.end() : result;
}

const json = JSON.stringify({ output_text: "Once upon a time — naïve ✓", token_usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } });
const byLength = b(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nRetry-After: 3\r\n\r\n${json}`);
const chunked = b(`HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n${"x".repeat(26)}\r\n0\r\nX-Trailer: yes\r\n\r\n`);

describe("HttpResponseParser", () => {
  it("reads a body framed by Content-Length, with its status and headers", () => {
    const r = parseInPieces(byLength)!;
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("retry-after"), "3");
    assert.equal(r.body.toString("utf8"), json);
    assert.equal(r.keepAlive, true);
    assert.equal(r.extra, 0);
  });

  it("waits for the last byte of the body", () => {
    assert.equal(parseInPieces(byLength.subarray(0, byLength.length - 1)), undefined);
  });

  it("decodes chunked coding with chunk extensions and trailers", () => {
    const r = parseInPieces(chunked)!;
    assert.equal(r.status, 503);
    assert.equal(r.body.toString("latin1"), `hello${"x".repeat(26)}`);
    assert.equal(r.keepAlive, true);
  });

  it("is not done before the chunked body's final empty line", () => {
    assert.equal(parseInPieces(chunked.subarray(0, chunked.length - 2)), undefined);
  });

  it("gives the same response however the bytes are split", () => {
    fc.assert(
      fc.property(fc.constantFrom(byLength, chunked), fc.array(fc.nat(), { maxLength: 40 }), (raw, cuts) => {
        const whole = parseInPieces(raw)!;
        const pieces = parseInPieces(raw, cuts)!;
        assert.equal(pieces.status, whole.status);
        assert.deepEqual(pieces.body, whole.body);
        assert.equal(pieces.extra, 0);
      }),
    );
  });

  it("skips 100 Continue and 103 Early Hints before the real answer", () => {
    const raw = b("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    const r = parseInPieces(raw, [10, 30, 60])!;
    assert.equal(r.status, 201);
    assert.equal(r.body.toString(), "ok");
    assert.equal(r.headers.has("link"), false);
  });

  it("reads a body without framing until the connection ends, and then does not reuse it", () => {
    const raw = b("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    assert.equal(parseInPieces(raw), undefined);
    const r = parseInPieces(raw, [], true)!;
    assert.equal(r.body.toString(), "until the end");
    assert.equal(r.keepAlive, false);
  });

  it("answers 204 with no body even without framing headers", () => {
    const r = parseInPieces(b("HTTP/1.1 204 No Content\r\n\r\n"))!;
    assert.equal(r.status, 204);
    assert.equal(r.body.length, 0);
  });

  it("honours Connection: close, and HTTP/1.0 only keeps alive when asked", () => {
    assert.equal(parseInPieces(b("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))!.keepAlive, false);
    assert.equal(parseInPieces(b("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"))!.keepAlive, false);
    assert.equal(parseInPieces(b("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"))!.keepAlive, true);
  });

  it("counts bytes that follow the response, which make the connection unusable", () => {
    const parser = new HttpResponseParser();
    assert.equal(parser.feed(b("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP"))!.extra, 4);
    assert.equal(parser.feed(b("/1.1"))!.extra, 8);
  });

  it("says the answer was cut when the connection ends before it is complete", () => {
    assert.throws(() => parseInPieces(byLength.subarray(0, 60), [], true), { name: "HttpProtocolError", message: /closed before the answer ended/ });
    assert.throws(() => new HttpResponseParser().end(), HttpProtocolError);
  });

  for (const [name, raw] of [
    ["a status line that is not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"],
    ["a header without a colon", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"],
    ["a content-length that is not a number", "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n"],
    ["a chunk size that is not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ["a chunk not followed by CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX"],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseInPieces(b(raw)), HttpProtocolError);
    });
  }

  it("refuses a head larger than MAX_HEAD_BYTES instead of buffering it", () => {
    const parser = new HttpResponseParser();
    parser.feed(b("HTTP/1.1 200 OK\r\n"));
    assert.throws(() => parser.feed(Buffer.alloc(MAX_HEAD_BYTES, 97)), { message: /head too large/ });
  });
});

/**
 * Reads one HTTP/1.1 response from the bytes of a connection as they arrive, in whatever pieces the
 * socket hands them over: the status line, the headers, then a body framed by Content-Length, by
 * chunked transfer coding, or by the end of the connection. Just what the worker's keep-alive client
 * needs (lean-http.ts); node:http's client costs five times its CPU per call (see that file).
 */

/** A response head larger than this is refused: no model server sends one, and it bounds memory. */
export const MAX_HEAD_BYTES = 64 * 1024;

export interface ParsedResponse {
  status: number;
  /** Header names lower-cased; a repeated header keeps its first value. */
  headers: Map<string, string>;
  body: Buffer;
  /** False when the server said it closes the connection, or framed the body by closing it. */
  keepAlive: boolean;
  /** Bytes that came after the response: a server that sends them cannot be trusted with the next call. */
  extra: number;
}

export class HttpProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HttpProtocolError";
  }
}

type Framing = { kind: "length"; remaining: number } | { kind: "chunked" } | { kind: "close" };

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");

export class HttpResponseParser {
  private pending: Buffer = Buffer.alloc(0);
  private status = 0;
  private headers = new Map<string, string>();
  private keepAlive = true;
  private framing: Framing | undefined;
  private readonly body: Buffer[] = [];
  /** Chunked coding: bytes of the current chunk still to read, then its CRLF; -1 between chunks. */
  private chunkLeft = -1;
  private inTrailers = false;
  private result: ParsedResponse | undefined;

  /** The response once complete, else undefined. Throws HttpProtocolError on malformed bytes. */
  feed(chunk: Buffer): ParsedResponse | undefined {
    if (this.result) {
      this.result.extra += chunk.length;
      return this.result;
    }
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.framing && !this.readHead()) return undefined;
    return this.readBody();
  }

  /** The connection ended: completes a body framed by the close, else says the answer was cut. */
  end(): ParsedResponse {
    if (this.result) return this.result;
    if (this.framing?.kind === "close") {
      this.body.push(this.pending);
      return this.finish(0);
    }
    throw new HttpProtocolError("the connection closed before the answer ended");
  }

  private readHead(): boolean {
    for (;;) {
      const end = this.pending.indexOf(HEAD_END);
      if (end < 0) {
        if (this.pending.length > MAX_HEAD_BYTES) throw new HttpProtocolError("response head too large");
        return false;
      }
      const lines = this.pending.toString("latin1", 0, end).split("\r\n");
      this.pending = this.pending.subarray(end + 4);
      const statusLine = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
      if (!statusLine) throw new HttpProtocolError(`not an HTTP/1.x status line: ${(lines[0] ?? "").slice(0, 40)}`);
      const status = Number(statusLine[2]);
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon <= 0) throw new HttpProtocolError("malformed response header");
        const name = line.slice(0, colon).trim().toLowerCase();
        if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
      }
      // 1xx answers (100 Continue, 103 Early Hints) precede the real one.
      if (status >= 100 && status < 200) continue;
      this.status = status;
      this.headers = headers;
      const connection = (headers.get("connection") ?? "").toLowerCase();
      this.keepAlive = statusLine[1] === "1" ? connection !== "close" : connection === "keep-alive";
      this.framing = framingOf(status, headers);
      return true;
    }
  }

  private readBody(): ParsedResponse | undefined {
    const framing = this.framing!;
    if (framing.kind === "length") {
      const take = Math.min(framing.remaining, this.pending.length);
      this.body.push(this.pending.subarray(0, take));
      framing.remaining -= take;
      this.pending = this.pending.subarray(take);
      return framing.remaining === 0 ? this.finish(this.pending.length) : undefined;
    }
    if (framing.kind === "close") return undefined; // the body is whatever comes until end()
    return this.readChunks();
  }

  private readChunks(): ParsedResponse | undefined {
    for (;;) {
      if (this.inTrailers) {
        const lineEnd = this.pending.indexOf(CRLF);
        if (lineEnd < 0) return undefined;
        this.pending = this.pending.subarray(lineEnd + 2);
        if (lineEnd === 0) return this.finish(this.pending.length); // the empty line after the trailers
        continue;
      }
      if (this.chunkLeft < 0) {
        const lineEnd = this.pending.indexOf(CRLF);
        if (lineEnd < 0) {
          if (this.pending.length > 1024) throw new HttpProtocolError("malformed chunk size");
          return undefined;
        }
        const sizeText = this.pending.toString("latin1", 0, lineEnd).split(";")[0]!.trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) throw new HttpProtocolError("malformed chunk size");
        this.pending = this.pending.subarray(lineEnd + 2);
        const size = Number.parseInt(sizeText, 16);
        if (size === 0) {
          this.inTrailers = true;
          continue;
        }
        this.chunkLeft = size;
      }
      if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, this.pending.length);
        this.body.push(this.pending.subarray(0, take));
        this.chunkLeft -= take;
        this.pending = this.pending.subarray(take);
        if (this.chunkLeft > 0) return undefined;
      }
      // The chunk's data is read: its CRLF follows.
      if (this.pending.length < 2) return undefined;
      if (this.pending[0] !== 13 || this.pending[1] !== 10) throw new HttpProtocolError("chunk not followed by CRLF");
      this.pending = this.pending.subarray(2);
      this.chunkLeft = -1;
    }
  }

  private finish(extra: number): ParsedResponse {
    this.result = { status: this.status, headers: this.headers, body: Buffer.concat(this.body), keepAlive: this.keepAlive && this.framing?.kind !== "close", extra };
    this.pending = Buffer.alloc(0);
    return this.result;
  }
}

function framingOf(status: number, headers: Map<string, string>): Framing {
  if (status === 204 || status === 304) return { kind: "length", remaining: 0 };
  const coding = headers.get("transfer-encoding");
  if (coding !== undefined) {
    if (coding.toLowerCase().split(",").pop()!.trim() === "chunked") return { kind: "chunked" };
    return { kind: "close" };
  }
  const length = headers.get("content-length");
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length)) throw new HttpProtocolError("malformed content-length");
    return { kind: "length", remaining: Number(length) };
  }
  return { kind: "close" };
}

/**
 * A minimal streaming HTTP/1.1 client for SSE answers (phase g), on a raw keep-alive socket like
 * raw-http.ts: one request in flight per connection, the chunked body decoded and split into SSE
 * messages as the bytes arrive, so that the time of each message is the time its bytes came in, not
 * the time the whole answer ended. Both servers frame SSE as OpenAI does (`data: …\n\n`, LF line
 * ends, no event names), which is all this parses.
 */
import net from "node:net";
import { StringDecoder } from "node:string_decoder";

/** Called with each SSE message's data and the time (performance.now()) its last bytes arrived. */
export type OnSseData = (data: string, at: number) => void;

export interface StreamedAnswer {
  status: number;
  /** When the request's last byte was handed to the socket. */
  writtenAt: number;
  /** When the answer ended (the chunked terminator, or the whole Content-Length body). */
  endedAt: number;
  sse: boolean;
  /** The body of an answer that is not SSE (an error), first 2,000 characters. */
  body: string;
}

type Stage = "head" | "size" | "data" | "crlf" | "trailer" | "length";

interface Pending {
  onData: OnSseData;
  resolve: (a: StreamedAnswer) => void;
  reject: (e: Error) => void;
  writtenAt: number;
  stage: Stage;
  status: number;
  sse: boolean;
  remaining: number;
  decoder: StringDecoder;
  text: string;
}

const EMPTY = Buffer.alloc(0);

export class SseConnection {
  private socket: net.Socket | null = null;
  private buffer: Buffer = EMPTY;
  private current: Pending | null = null;

  constructor(private readonly host: string, private readonly port: number) {}

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.on("error", (err) => this.abort(socket, err));
        socket.on("close", () => this.abort(socket, new Error("connection closed")));
        socket.on("data", (chunk: Buffer) => this.onBytes(chunk, performance.now()));
        resolve(socket);
      });
      socket.once("error", reject);
    });
  }

  private abort(socket: net.Socket, err: Error) {
    if (this.socket !== socket) return;
    this.socket = null;
    this.buffer = EMPTY;
    const p = this.current;
    this.current = null;
    p?.reject(err);
  }

  /** Sends one request; `onData` sees each SSE message as it arrives; resolves when the answer ends. */
  async request(raw: Buffer, onData: OnSseData): Promise<StreamedAnswer> {
    if (!this.socket) this.socket = await this.connect();
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      this.current = { onData, resolve, reject, writtenAt: 0, stage: "head", status: 0, sse: false, remaining: 0, decoder: new StringDecoder("utf8"), text: "" };
      const p = this.current;
      socket.write(raw);
      p.writtenAt = performance.now();
    });
  }

  close() {
    this.socket?.destroy();
    this.socket = null;
  }

  /** Body bytes: split into SSE messages (an SSE answer) or kept as text (anything else). */
  private feed(p: Pending, bytes: Buffer, at: number) {
    if (!p.sse) {
      if (p.text.length < 2000) p.text += p.decoder.write(bytes);
      return;
    }
    p.text += p.decoder.write(bytes);
    let start = 0;
    for (;;) {
      const end = p.text.indexOf("\n\n", start);
      if (end < 0) break;
      let data = "";
      for (const line of p.text.slice(start, end).split("\n")) {
        if (line.startsWith("data:")) data += (data ? "\n" : "") + line.slice(line[5] === " " ? 6 : 5);
      }
      if (data) p.onData(data, at);
      start = end + 2;
    }
    if (start > 0) p.text = p.text.slice(start);
  }

  private finish(p: Pending, at: number) {
    this.current = null;
    p.resolve({ status: p.status, writtenAt: p.writtenAt, endedAt: at, sse: p.sse, body: p.sse ? "" : p.text.slice(0, 2000) });
  }

  private onBytes(chunk: Buffer, at: number) {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const buf = this.buffer;
    let pos = 0;
    for (let p = this.current; p; p = this.current) {
      if (p.stage === "head") {
        const end = buf.indexOf("\r\n\r\n", pos);
        if (end < 0) break;
        const head = buf.toString("latin1", pos, end);
        pos = end + 4;
        p.status = Number(head.slice(9, 12));
        p.sse = /\r\ncontent-type:\s*text\/event-stream/i.test(head);
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (length) {
          p.stage = "length";
          p.remaining = Number(length[1]);
          if (p.remaining === 0) this.finish(p, at);
        } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
          p.stage = "size";
        } else {
          this.finish(p, at); // no body (204/304)
        }
      } else if (p.stage === "size") {
        const eol = buf.indexOf("\r\n", pos);
        if (eol < 0) break;
        const size = parseInt(buf.toString("latin1", pos, eol), 16); // chunk extensions, if any, are ignored by parseInt
        pos = eol + 2;
        if (!Number.isFinite(size)) {
          this.socket?.destroy(new Error("bad chunk size in the answer")); // rejects the request (abort)
          return;
        }
        if (size === 0) p.stage = "trailer";
        else {
          p.stage = "data";
          p.remaining = size;
        }
      } else if (p.stage === "data" || p.stage === "length") {
        const take = Math.min(p.remaining, buf.length - pos);
        if (take === 0) break;
        this.feed(p, buf.subarray(pos, pos + take), at);
        pos += take;
        p.remaining -= take;
        if (p.remaining === 0) {
          if (p.stage === "length") this.finish(p, at);
          else p.stage = "crlf";
        }
      } else if (p.stage === "crlf") {
        if (buf.length - pos < 2) break;
        pos += 2;
        p.stage = "size";
      } else {
        // Trailer lines until an empty one: the answer is complete, the connection is free again.
        const eol = buf.indexOf("\r\n", pos);
        if (eol < 0) break;
        const empty = eol === pos;
        pos = eol + 2;
        if (empty) this.finish(p, at);
      }
    }
    this.buffer = pos >= buf.length ? EMPTY : buf.subarray(pos);
  }
}

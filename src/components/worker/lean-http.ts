/**
 * The worker's keep-alive HTTP/1.1 client for whole (non-streamed) JSON calls over plain http:
 * one write per request, one small parser (http-response-parser.ts), listeners set once per
 * connection instead of per call. Measured on the 2-core bench machine against a node:http server
 * answering a model-sized JSON at 32 concurrent calls: node:http with a keep-alive agent cost the
 * client 130–157 µs of CPU per call and the server 55–71 µs; this client 23–24 µs and the server
 * 27–28 µs (its request arrives in one segment). The worker makes one such call per request, so
 * this is most of what a request costs it. Streamed calls and https stay on node:http.
 */
import net from "node:net";
import { HttpResponseParser, type ParsedResponse } from "./http-response-parser.js";

export interface LeanResponse {
  status: number;
  retryAfter: string | undefined;
  text: string;
}

/** What a connection is doing now: serving one call, or waiting in the idle list. */
interface Connection {
  socket: net.Socket;
  origin: string;
  call: PendingCall | undefined;
}

interface PendingCall {
  parser: HttpResponseParser;
  resolve(response: ParsedResponse): void;
  reject(error: Error): void;
}

/** A header value that could end the line would let a caller write headers of its own. */
const UNSAFE_HEADER = /[\r\n\0]/;

export class LeanHttpPool {
  /** Idle connections by origin, most recently used last (reused first: warm, and the rest time out). */
  private readonly idle = new Map<string, Connection[]>();
  private readonly open = new Set<Connection>();
  private closed = false;

  /** Idle connections close after `idleMs`, before a server's own keep-alive timeout could (5 s in Node). */
  constructor(private readonly idleMs = 4_000) {}

  /**
   * POSTs `json` (already serialized) and reads the whole answer. Rejects on a network error, a
   * malformed answer, or when `signal` aborts (with an AbortError); never on an HTTP status.
   */
  async post(url: URL, json: string, headers: Record<string, string>, signal: AbortSignal): Promise<LeanResponse> {
    if (signal.aborted) throw abortError();
    const head = requestHead(url, headers, Buffer.byteLength(json));
    const connection = this.takeIdle(url.host) ?? (await this.connect(url, signal));
    const response = await new Promise<ParsedResponse>((resolve, reject) => {
      const onAbort = () => {
        connection.socket.destroy();
        reject(abortError());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      connection.call = {
        parser: new HttpResponseParser(),
        resolve: (r) => {
          signal.removeEventListener("abort", onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      connection.socket.write(head + json);
    });
    connection.call = undefined;
    if (response.keepAlive && response.extra === 0 && !this.closed && !connection.socket.destroyed) this.release(connection);
    else connection.socket.destroy();
    const retryAfter = response.headers.get("retry-after");
    return { status: response.status, retryAfter, text: response.body.toString("utf8") };
  }

  /** Closes every connection; calls in progress reject. */
  destroy(): void {
    this.closed = true;
    for (const connection of this.open) connection.socket.destroy();
    this.idle.clear();
  }

  private takeIdle(origin: string): Connection | undefined {
    const list = this.idle.get(origin);
    for (let connection = list?.pop(); connection; connection = list?.pop()) {
      // One closed by the server whose 'close' has not been handled yet.
      if (connection.socket.destroyed || !connection.socket.writable) continue;
      connection.socket.setTimeout(0);
      return connection;
    }
    return undefined;
  }

  private release(connection: Connection): void {
    let list = this.idle.get(connection.origin);
    if (!list) this.idle.set(connection.origin, (list = []));
    list.push(connection);
    connection.socket.setTimeout(this.idleMs);
  }

  private forget(connection: Connection): void {
    this.open.delete(connection);
    const list = this.idle.get(connection.origin);
    const at = list?.indexOf(connection) ?? -1;
    if (at >= 0) list!.splice(at, 1);
  }

  private connect(url: URL, signal: AbortSignal): Promise<Connection> {
    if (this.closed) return Promise.reject(new Error("the client is closed"));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80) });
      socket.setNoDelay(true);
      const connection: Connection = { socket, origin: url.host, call: undefined };
      this.open.add(connection);
      const onAbort = () => {
        socket.destroy();
        reject(abortError());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const onConnectError = (error: Error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      };
      socket.once("error", onConnectError);
      socket.once("connect", () => {
        signal.removeEventListener("abort", onAbort);
        socket.off("error", onConnectError);
        resolve(connection);
      });
      this.listen(connection);
    });
  }

  /** Once per connection: bytes go to the call it serves; an idle one that times out, ends or errs is closed. */
  private listen(connection: Connection): void {
    const { socket } = connection;
    socket.on("data", (chunk: Buffer) => {
      const call = connection.call;
      if (!call) {
        socket.destroy(); // bytes nobody asked for: the connection cannot serve another call
        return;
      }
      let response: ParsedResponse | undefined;
      try {
        response = call.parser.feed(chunk);
      } catch (error) {
        socket.destroy();
        call.reject(error as Error);
        return;
      }
      if (response) call.resolve(response);
    });
    socket.on("timeout", () => {
      if (connection.call) return;
      this.forget(connection);
      socket.destroy();
    });
    socket.on("error", (error) => connection.call?.reject(error));
    socket.on("close", () => {
      this.forget(connection);
      const call = connection.call;
      if (!call) return;
      connection.call = undefined;
      try {
        call.resolve(call.parser.end());
      } catch (error) {
        call.reject(error as Error);
      }
    });
  }
}

function requestHead(url: URL, headers: Record<string, string>, length: number): string {
  let head = `POST ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (UNSAFE_HEADER.test(name) || UNSAFE_HEADER.test(value) || name.includes(":")) throw new Error(`invalid header ${JSON.stringify(name)}`);
    head += `${name}: ${value}\r\n`;
  }
  return `${head}content-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
}

function abortError(): Error {
  const error = new Error("the call was aborted");
  error.name = "AbortError";
  return error;
}

/** A minimal HTTP/1.1 keep-alive client on raw sockets: the load generator takes little CPU. */
import net from "node:net";

/**
 * One keep-alive HTTP/1.1 connection, one request at a time. Parses just the status line,
 * Content-Length and chunked endings; cheap enough that the load generator stays small.
 */
export class RawConnection {
  private socket: net.Socket | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: { status: number; body: Buffer }) => void; reject: (e: Error) => void } | null = null;

  constructor(private readonly host: string, private readonly port: number) {}

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      socket.once("connect", () => {
        socket.off("error", reject);
        socket.on("error", (err) => this.abort(err));
        socket.on("close", () => this.abort(new Error("connection closed")));
        socket.on("data", (chunk: Buffer) => this.onData(chunk));
        resolve(socket);
      });
      socket.once("error", reject);
    });
  }

  private abort(err: Error) {
    this.socket = null;
    this.buffer = Buffer.alloc(0);
    const w = this.waiting;
    this.waiting = null;
    w?.reject(err);
  }

  private onData(chunk: Buffer) {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf("\r\n\r\n");
    if (headerEnd < 0) return;
    const head = this.buffer.toString("latin1", 0, headerEnd);
    const status = Number(head.slice(9, 12));
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let total: number;
    if (lengthMatch) {
      total = headerEnd + 4 + Number(lengthMatch[1]);
      if (this.buffer.length < total) return;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const endChunk = this.buffer.indexOf("\r\n0\r\n\r\n", headerEnd + 2);
      if (endChunk < 0) return;
      total = endChunk + 7;
    } else {
      total = headerEnd + 4; // no body (204/304)
    }
    const body = this.buffer.subarray(headerEnd + 4, total);
    this.buffer = this.buffer.length === total ? Buffer.alloc(0) : this.buffer.subarray(total);
    const w = this.waiting;
    this.waiting = null;
    w?.resolve({ status, body });
  }

  async request(raw: Buffer): Promise<{ status: number; body: Buffer }> {
    if (!this.socket) this.socket = await this.connect();
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      socket.write(raw);
    });
  }

  close() {
    this.socket?.destroy();
    this.socket = null;
  }
}

export function httpRequest(method: string, path: string, headers: Record<string, string>, body?: string): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, "host: 127.0.0.1", "connection: keep-alive"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n${body ?? ""}`);
}

/** Polls GET /api/v1/status/{id} on `api` every `intervalMs` until the request is final (a client waiting by polling). */
export async function pollUntilFinal(api: RawConnection, requestId: string, authorization: string, intervalMs = 20): Promise<void> {
  const status = httpRequest("GET", `/api/v1/status/${requestId}`, { authorization });
  for (;;) {
    const seen = JSON.parse((await api.request(status)).body.toString("utf8")) as { status: string };
    if (seen.status === "completed" || seen.status === "failed" || seen.status === "cancelled") return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A TCP proxy in front of a real server, for fault injection without hooks in production code:
 * point a client at `url`, then
 * - `cut()` destroys every connection through it now, as a network failure would (new connections
 *   are let through again at once; the server itself is untouched);
 * - `blackhole()` keeps every connection open, and accepts new ones, but forwards nothing either
 *   way (what arrives is dropped), as when the server's host died or the network partitioned: a
 *   client only learns of it from its own time bounds;
 * - `refuse()` resets every connection and every new one at once (a server that is down);
 * - `forward()` ends either: connections that lived through a blackhole are reset (bytes were lost
 *   on them, as on a connection the partition outlasted), new ones are forwarded again.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export type ProxyMode = "forward" | "blackhole" | "refuse";

export interface TcpProxy {
  /** `target` with its host and port replaced by the proxy's. */
  url: string;
  readonly mode: ProxyMode;
  /** Connections refused so far (each a client's attempt to connect while refusing). */
  readonly refused: number;
  /** Destroys every connection through the proxy now. */
  cut(): void;
  blackhole(): void;
  refuse(): void;
  forward(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
  /** Bytes were dropped on this pair: it cannot carry a consistent stream any more. */
  tainted: boolean;
}

const DEFAULT_PORTS: Record<string, number> = { "amqp:": 5672, "redis:": 6379, "postgres:": 5432, "postgresql:": 5432 };

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const upstream = new URL(target);
  const port = Number(upstream.port || DEFAULT_PORTS[upstream.protocol]);
  const pairs = new Set<Pair>();
  let mode: ProxyMode = "forward";
  let refused = 0;

  const reset = (socket: Socket) => {
    if (!socket.destroyed) socket.resetAndDestroy();
  };
  const server: Server = createServer((client) => {
    client.on("error", () => undefined);
    if (mode === "refuse") {
      refused += 1;
      return reset(client);
    }
    const pair: Pair = { client, server: connect(port, upstream.hostname), tainted: false };
    pair.server.on("error", () => undefined);
    pairs.add(pair);
    // Bytes go through in forward mode only; in a blackhole they are read and dropped.
    const relay = (from: Socket, to: Socket) =>
      from.on("data", (chunk) => {
        if (mode === "forward" && !pair.tainted) to.write(chunk);
        else pair.tainted = true;
      });
    relay(client, pair.server);
    relay(pair.server, client);
    if (mode === "blackhole") pair.tainted = true;
    const close = () => {
      pairs.delete(pair);
      pair.client.destroy();
      pair.server.destroy();
    };
    client.on("close", close);
    pair.server.on("close", close);
    // A half-close is passed on only while forwarding (in a blackhole the FIN is lost too).
    client.on("end", () => mode === "forward" && pair.server.end());
    pair.server.on("end", () => mode === "forward" && client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(address.port);
  const resetPairs = (which: (pair: Pair) => boolean) => {
    for (const pair of [...pairs]) {
      if (!which(pair)) continue;
      reset(pair.client);
      reset(pair.server);
    }
  };
  return {
    url: url.toString(),
    get mode() {
      return mode;
    },
    get refused() {
      return refused;
    },
    cut() {
      for (const pair of [...pairs]) {
        pair.client.destroy(new Error("connection cut by the test proxy"));
        pair.server.destroy();
      }
    },
    blackhole() {
      mode = "blackhole";
      for (const pair of pairs) pair.tainted = true;
    },
    refuse() {
      mode = "refuse";
      resetPairs(() => true);
    },
    forward() {
      mode = "forward";
      resetPairs((pair) => pair.tainted);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const pair of pairs) {
          pair.client.destroy();
          pair.server.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP proxy in front of a real server, for fault injection without hooks in production code:
 * point a client at `url`, then `cut()` destroys every connection through it, as a network failure
 * would. New connections are let through again at once (the server itself is untouched).
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface TcpProxy {
  /** `target` with its host and port replaced by the proxy's. */
  url: string;
  /** Destroys every connection through the proxy now. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const upstream = new URL(target);
  const defaults: Record<string, number> = { "amqp:": 5672, "redis:": 6379, "postgres:": 5432, "postgresql:": 5432 };
  const port = Number(upstream.port || defaults[upstream.protocol]);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const server = connect(port, upstream.hostname);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(server).pipe(client);
    client.on("close", () => server.destroy());
    server.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(address.port);
  return {
    url: url.toString(),
    cut() {
      for (const socket of sockets) socket.destroy(new Error("connection cut by the test proxy"));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

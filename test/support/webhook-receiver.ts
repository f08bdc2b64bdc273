/**
 * A real HTTP server on loopback that receives webhooks, one behaviour per path: answer 200, answer
 * 500 for the first N deliveries, always 500, or hold the request open until released.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** What it was answered. */
  status: number;
}

export type Behaviour = { kind: "ok" } | { kind: "fail"; times: number } | { kind: "always-fail" } | { kind: "hold" };

export interface Receiver {
  url: string;
  received: Received[];
  /** A path with its behaviour; answers its full URL. */
  path(name: string, behaviour?: Behaviour): string;
  /** The deliveries a path got (every attempt, in order). */
  at(name: string): Received[];
  /** Requests held open now. */
  held(name: string): number;
  /** Answers 200 to every held request. */
  release(name: string): void;
  close(): Promise<void>;
}

/** On `port` (0: any free one). */
export async function startReceiver(port = 0): Promise<Receiver> {
  const behaviours = new Map<string, Behaviour>();
  const holding = new Map<string, http.ServerResponse[]>();
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const path = (req.url ?? "/").slice(1);
      const behaviour = behaviours.get(path) ?? { kind: "ok" };
      const seen = received.filter((r) => r.path === path).length;
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      if (behaviour.kind === "hold") {
        received.push({ path, headers, body, status: 200 });
        holding.set(path, [...(holding.get(path) ?? []), res]);
        return;
      }
      const status = behaviour.kind === "always-fail" || (behaviour.kind === "fail" && seen < behaviour.times) ? 500 : 200;
      received.push({ path, headers, body, status });
      res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok" : "receiver broken");
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const release = (name: string) => {
    for (const res of holding.get(name) ?? []) res.writeHead(200).end("ok");
    holding.set(name, []);
  };
  return {
    url,
    received,
    path(name, behaviour = { kind: "ok" }) {
      behaviours.set(name, behaviour);
      return `${url}/${name}`;
    },
    at: (name) => received.filter((r) => r.path === name),
    held: (name) => holding.get(name)?.length ?? 0,
    release,
    close: async () => {
      for (const name of holding.keys()) release(name);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The worker's HTTP transport to the model server: a JSON POST over node:http with a keep-alive
 * agent. Cheaper per call than fetch() (no WHATWG streams, no per-call dispatcher work), and the
 * connections stay open between calls, so neither side pays a TCP handshake per request.
 */
import http from "node:http";
import https from "node:https";

export interface PostResponse {
  status: number;
  /** The Retry-After header as sent, if any. */
  retryAfter: string | undefined;
  text: string;
}

export interface KeepAliveAgent {
  http: http.Agent;
  https: https.Agent;
  destroy(): void;
}

/**
 * Idle connections are closed by us after 4 s, before a server's own keep-alive timeout (5 s in
 * Node and uvicorn, 72 s in fastify) could close one just as a call reuses it. Connections in use
 * are not timed out here: the caller bounds each call.
 */
export function createKeepAliveAgent(): KeepAliveAgent {
  const options = { keepAlive: true, timeout: 4_000, scheduling: "lifo" as const };
  const agents = { http: new http.Agent(options), https: new https.Agent(options) };
  return {
    ...agents,
    destroy() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/**
 * POSTs `body` as JSON and reads the whole answer as text. Rejects on a network error or when
 * `signal` aborts (with the signal's reason), never on an HTTP status.
 */
export function postJson(
  url: URL,
  body: unknown,
  headers: Record<string, string>,
  options: { signal: AbortSignal; agent?: KeepAliveAgent },
): Promise<PostResponse> {
  const payload = Buffer.from(JSON.stringify(body));
  const secure = url.protocol === "https:";
  const request = secure ? https.request : http.request;
  return new Promise<PostResponse>((resolve, reject) => {
    if (options.signal.aborted) {
      reject(abortError());
      return;
    }
    const req = request(url, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", "content-length": String(payload.length) },
      ...(options.agent ? { agent: secure ? options.agent.https : options.agent.http } : {}),
    });
    const onAbort = () => req.destroy(abortError());
    options.signal.addEventListener("abort", onAbort, { once: true });
    const done = () => options.signal.removeEventListener("abort", onAbort);
    req.once("error", (error) => {
      done();
      reject(error);
    });
    req.once("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.once("error", (error) => {
        done();
        reject(error);
      });
      res.once("close", () => {
        if (res.complete) return;
        done();
        reject(new Error("the connection closed before the answer ended"));
      });
      res.once("end", () => {
        done();
        const retryAfter = res.headers["retry-after"];
        resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, text: Buffer.concat(chunks).toString("utf8") });
      });
    });
    req.end(payload);
  });
}

function abortError(): Error {
  const error = new Error("the call was aborted");
  error.name = "AbortError";
  return error;
}

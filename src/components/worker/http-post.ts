/**
 * The worker's HTTP transport to the model server: JSON POSTs on keep-alive connections, so neither
 * side pays a TCP handshake per request. Whole answers over plain http go through the lean client
 * (lean-http.ts), a fifth of node:http's CPU per call; streamed answers and https through node:http
 * with a keep-alive agent, still cheaper per call than fetch() (no WHATWG streams).
 */
import http from "node:http";
import https from "node:https";
import { LeanHttpPool } from "./lean-http.js";

export interface PostResponse {
  status: number;
  /** The Retry-After header as sent, if any. */
  retryAfter: string | undefined;
  text: string;
}

export interface KeepAliveAgent {
  http: http.Agent;
  https: https.Agent;
  lean: LeanHttpPool;
  destroy(): void;
}

/**
 * Idle connections are closed by us after 4 s, before a server's own keep-alive timeout (5 s in
 * Node and uvicorn, 72 s in fastify) could close one just as a call reuses it. Connections in use
 * are not timed out here: the caller bounds each call.
 */
export function createKeepAliveAgent(): KeepAliveAgent {
  const options = { keepAlive: true, timeout: 4_000, scheduling: "lifo" as const };
  const agents = { http: new http.Agent(options), https: new https.Agent(options), lean: new LeanHttpPool(options.timeout) };
  return {
    ...agents,
    destroy() {
      agents.http.destroy();
      agents.https.destroy();
      agents.lean.destroy();
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
  if (options.agent && url.protocol === "http:") return options.agent.lean.post(url, JSON.stringify(body), headers, options.signal);
  return new Promise<PostResponse>((resolve, reject) => {
    if (options.signal.aborted) {
      reject(abortError());
      return;
    }
    const { req, payload, answered, done } = openPost(url, body, headers, options);
    req.once("error", (error) => {
      done();
      reject(error);
    });
    req.once("response", (res) => {
      answered(res);
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

export interface StreamResponse {
  status: number;
  /** The Retry-After header as sent, if any. */
  retryAfter: string | undefined;
  /**
   * The body as it arrives: `data` chunks, then `end`; a connection cut before the end shows as
   * `close` with `complete` false (or an `error`). Aborting the signal destroys it.
   */
  body: http.IncomingMessage;
}

/**
 * POSTs `body` as JSON and resolves as soon as the status and headers arrive, leaving the body to
 * be read as it streams in. Rejects on a network error or when `signal` aborts before the answer
 * starts; an abort after that destroys the request (and so the body), and the connection is not
 * reused. Same agent, same headers as postJson.
 */
export function postStream(
  url: URL,
  body: unknown,
  headers: Record<string, string>,
  options: { signal: AbortSignal; agent?: KeepAliveAgent },
): Promise<StreamResponse> {
  return new Promise<StreamResponse>((resolve, reject) => {
    if (options.signal.aborted) {
      reject(abortError());
      return;
    }
    const { req, payload, answered, done } = openPost(url, body, headers, options);
    let responded = false;
    req.on("error", (error) => {
      if (responded) return; // the body's reader sees the cut (close without complete)
      done();
      reject(error);
    });
    req.once("response", (res) => {
      responded = true;
      answered(res);
      // A cut shows to the reader as `close` without `complete`; the error itself is not needed.
      res.on("error", () => undefined);
      // Once the answer has ended, its socket may serve the next call: an abort no longer touches it.
      res.once("end", done);
      res.once("close", done);
      const retryAfter = res.headers["retry-after"];
      resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, body: res });
    });
    req.end(payload);
  });
}

/**
 * A JSON POST on the module and agent of the URL's protocol, not yet sent (`req.end(payload)`).
 * Aborting the signal destroys it, unless its answer is complete: destroying then would destroy a
 * socket already handed back to the agent, whose error nobody listens to. `done` stops listening.
 */
function openPost(url: URL, body: unknown, headers: Record<string, string>, options: { signal: AbortSignal; agent?: KeepAliveAgent }) {
  const payload = Buffer.from(JSON.stringify(body));
  const secure = url.protocol === "https:";
  const request = secure ? https.request : http.request;
  const req = request(url, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json", "content-length": String(payload.length) },
    ...(options.agent ? { agent: secure ? options.agent.https : options.agent.http } : {}),
  });
  let answer: http.IncomingMessage | undefined;
  const onAbort = () => {
    if (!answer?.complete) req.destroy(abortError());
  };
  options.signal.addEventListener("abort", onAbort, { once: true });
  return {
    req,
    payload,
    answered: (res: http.IncomingMessage) => (answer = res),
    done: () => options.signal.removeEventListener("abort", onAbort),
  };
}

function abortError(): Error {
  const error = new Error("the call was aborted");
  error.name = "AbortError";
  return error;
}

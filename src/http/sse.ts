/** Starting a Server-Sent Events answer on the raw socket: the one set of headers every stream sends. */
import type { FastifyReply } from "fastify";
import type { ServerResponse } from "node:http";

/**
 * Takes the answer from fastify and sends the event-stream headers at once (with `extra`, e.g. the
 * rate-limit headers): the client learns it was accepted before the first event. Proxies are told
 * not to buffer (x-accel-buffering) or transform it.
 */
export function startEventStream(reply: FastifyReply, extra: Record<string, string> = {}): ServerResponse {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...extra,
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  raw.flushHeaders();
  return raw;
}

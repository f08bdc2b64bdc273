/**
 * `/events/{id}?tokens=true`: a streamed request's token deltas as SSE `token` events (id = seq),
 * then the final status event (id = the final event's seq) and the end of the stream. A client that
 * reconnects with Last-Event-ID resumes after that seq with no gap and no duplicate. Only for
 * requests submitted with `stream: true` (the others have no token stream).
 */
import type { FastifyReply } from "fastify";
import { startEventStream } from "../../http/sse.js";
import { followOrRecover } from "../../domain/follow-or-recover.js";
import type { EventBus, RequestStore, RequestStreams, RequestView } from "../../domain/ports.js";
import type { Logger } from "../../observability/logger.js";

export interface TokenEventDeps {
  streams: RequestStreams;
  events: EventBus;
  requests: Pick<RequestStore, "view">;
  log: Logger;
  heartbeatMs: number;
  /** Closers of the open event streams, so stop() can end them. */
  open: Set<() => void>;
  statusBody: (view: RequestView) => unknown;
}

export async function relayTokenEvents(reply: FastifyReply, request: RequestView, after: number, deps: TokenEventDeps): Promise<void> {
  const raw = startEventStream(reply);
  const stop = new AbortController();
  const close = () => {
    stop.abort();
    deps.open.delete(close);
    clearInterval(heartbeat);
    raw.end();
  };
  deps.open.add(close);
  raw.on("close", close);
  const heartbeat = setInterval(() => raw.write(": heartbeat\n\n"), deps.heartbeatMs);
  const write = async (text: string) => {
    if (!raw.write(text) && !stop.signal.aborted) await new Promise<void>((resolve) => raw.once("drain", resolve).once("close", resolve));
  };
  raw.write("retry: 2000\n\n");
  const sendFinal = async (seq: number | undefined) => {
    const latest = (await deps.requests.view(request.requestId)) ?? request;
    await write(`${seq !== undefined ? `id: ${seq}\n` : ""}event: ${latest.status}\ndata: ${JSON.stringify(deps.statusBody(latest))}\n\n`);
  };
  try {
    {
      for await (const event of followOrRecover({ ...deps, recheckMs: deps.heartbeatMs }, request.requestId, after, stop.signal)) {
        if (event.type === "delta") {
          await write(`id: ${event.seq}\nevent: token\ndata: ${JSON.stringify({ request_id: request.requestId, seq: event.seq, text: event.text })}\n\n`);
        } else {
          await sendFinal(event.seq);
        }
      }
    }
  } catch (error) {
    deps.log.warn({ err: error, request_id: request.requestId }, "token event stream interrupted");
    if (!stop.signal.aborted) await write(`event: error\ndata: ${JSON.stringify({ error: { code: "service_unavailable", message: "token stream interrupted; reconnect with Last-Event-ID" } })}\n\n`);
  }
  close();
}

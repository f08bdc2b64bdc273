/**
 * The ML Service continues the worker's trace: each model call (any POST) gets a server span whose
 * parent is the traceparent the worker sent, ended when the answer is over (a streamed one too:
 * streams are written on the raw response, past fastify's own hooks) or the caller went away.
 * Nothing is registered while tracing is off.
 */
import type { FastifyInstance } from "fastify";
import { endSpan, extract, SpanKind, startSpan, tracingEnabled } from "../../observability/tracing.js";

export function registerTracing(app: FastifyInstance): void {
  if (!tracingEnabled()) return;
  app.addHook("onRequest", async (request, reply) => {
    if (request.method !== "POST") return;
    const route = request.routeOptions.url ?? request.url;
    const span = startSpan(`ml-service POST ${route}`, {
      parent: extract(request.headers),
      kind: SpanKind.SERVER,
      attributes: { "http.request.method": "POST", "http.route": route, "ml_inference.request_id": String(request.headers["x-request-id"] ?? "") },
    });
    reply.raw.once("close", () => {
      span.setAttribute("http.response.status_code", reply.raw.statusCode);
      // Closed before the end: the worker cancelled (or cut) the call.
      if (!reply.raw.writableFinished) span.setAttribute("ml_inference.client_gone", true);
      endSpan(span, reply.raw.statusCode >= 500 ? new Error(`answered ${reply.raw.statusCode}`) : undefined);
    });
  });
}

/**
 * CORS for the configured origins only (`CORS_ORIGINS`, read once in config.ts for every
 * component). A preflight from an allowed origin is answered 204 with the allowed methods and
 * headers; any other origin gets no CORS headers at all, so browsers refuse to read the answer.
 */
import type { FastifyInstance } from "fastify";

const ALLOWED_METHODS = "GET, POST, OPTIONS";
const ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id";
const PREFLIGHT_MAX_AGE_SECONDS = "600";

export function registerCors(app: FastifyInstance, corsOrigins: readonly string[]): void {
  const origins = new Set(corsOrigins);
  if (origins.size === 0) return;
  const any = origins.has("*");
  app.addHook("onRequest", async (request, reply) => {
    const origin = request.headers.origin;
    if (!origin || !(any || origins.has(origin))) return;
    reply.header("Access-Control-Allow-Origin", any ? "*" : origin);
    reply.header("Vary", "Origin");
    if (request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined) {
      reply.header("Access-Control-Allow-Methods", ALLOWED_METHODS);
      reply.header("Access-Control-Allow-Headers", ALLOWED_HEADERS);
      reply.header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_SECONDS);
      return reply.code(204).send();
    }
  });
}

/**
 * The HTTP shell every component shares: JSON error answers with stable codes (never a stack trace),
 * body parsing (the guide's curl sends JSON as form-urlencoded), CORS for configured origins only,
 * optional per-IP rate limit, request metrics, /livez, /health and /metrics.
 */
import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError, type FastifyReply } from "fastify";
import { AppError, isAppError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { counter, histogram, renderMetrics, type Registry } from "../observability/metrics.js";

export interface HttpAppOptions {
  logger: Logger;
  /** Registries whose metrics /metrics serves (the app's own request metrics go into the first). */
  registries: Registry[];
  bodyLimitBytes?: number;
  corsOrigins?: string[];
  rateLimitPerIpPerMinute?: number;
  /** Readiness: resolves when every dependency answers; throws (→ 503) otherwise. `false`: the app serves its own /health. */
  health?: (() => Promise<Record<string, unknown>>) | false;
}

const JSON_LIKE = ["application/json", "application/x-www-form-urlencoded", "text/plain"];

export function sendError(reply: FastifyReply, error: AppError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header("Retry-After", String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  return reply.code(error.status).type("application/json").send(error.toJSON());
}

/** Maps fastify's own errors (body too large, bad media type, ...) onto our codes. */
export function toAppError(error: FastifyError | Error): AppError {
  if (isAppError(error)) return error;
  const code = (error as FastifyError).code;
  const status = (error as FastifyError).statusCode;
  switch (code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new AppError("payload_too_large", "request body is larger than the configured limit");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new AppError("unsupported_media_type", "send the body as application/json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new AppError("invalid_json", "the body is not valid JSON");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new AppError("invalid_body", "Content-Length does not match the body");
    default:
      if (status !== undefined && status >= 400 && status < 500) return new AppError("invalid_body", "the request could not be read");
      return new AppError("internal_error", "internal error");
  }
}

export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger as unknown as FastifyBaseLogger,
    // Per-request access lines cost more than the admission itself; metrics count requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: "idle",
  });
  const registry = options.registries[0];

  // One parser for JSON-ish bodies: read as text, then JSON.parse with our own error.
  app.removeContentTypeParser(["application/json", "text/plain"]);
  app.addContentTypeParser(JSON_LIKE, { parseAs: "string" }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === "") return done(new AppError("invalid_json", "the body is empty; send a JSON object"), undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new AppError("invalid_json", "the body is not valid JSON"), undefined);
    }
  });

  if (registry) {
    const requests = counter(registry, {
      name: "http_requests_total",
      help: "HTTP requests by route, method and status",
      labelNames: ["route", "method", "status"]});
    const duration = histogram(registry, {
      name: "http_request_duration_seconds",
      help: "HTTP request latency by route",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]});
    app.addHook("onResponse", async (request, reply) => {
      const route = request.routeOptions.url ?? "unmatched";
      requests.inc({ route, method: request.method, status: String(reply.statusCode) });
      duration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    });
  }

  const origins = new Set(options.corsOrigins ?? []);
  if (origins.size > 0) {
    app.addHook("onRequest", async (request, reply) => {
      const origin = request.headers.origin;
      if (!origin || !(origins.has(origin) || origins.has("*"))) return;
      reply.header("Access-Control-Allow-Origin", origins.has("*") ? "*" : origin);
      reply.header("Vary", "Origin");
      if (request.method === "OPTIONS") {
        reply.header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        reply.header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id");
        reply.header("Access-Control-Max-Age", "600");
        return reply.code(204).send();
      }
    });
  }

  const perMinute = options.rateLimitPerIpPerMinute ?? 0;
  if (perMinute > 0) {
    // Fixed one-minute windows per client IP, per replica: a cheap guard against floods from one
    // address; quotas per user are the real limit.
    const windows = new Map<string, { start: number; count: number }>();
    app.addHook("onRequest", async (request, reply) => {
      if (request.url === "/livez" || request.url === "/health" || request.url === "/metrics") return;
      const now = Date.now();
      const key = request.ip;
      let entry = windows.get(key);
      if (!entry || now - entry.start >= 60_000) {
        if (windows.size > 100_000) windows.clear();
        entry = { start: now, count: 0 };
        windows.set(key, entry);
      }
      entry.count += 1;
      if (entry.count > perMinute) {
        return sendError(
          reply,
          new AppError("rate_limited", `more than ${perMinute} requests a minute from this address`, {
            retryAfterSeconds: (entry.start + 60_000 - now) / 1000,
          }),
        );
      }
    });
  }

  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    const appError = toAppError(error);
    if (appError.status >= 500) request.log.error({ err: error, request_id: request.id }, "request failed");
    return sendError(reply, appError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new AppError("not_found", `no route ${request.method} ${request.url.split("?")[0]?.slice(0, 200)}`)),
  );

  app.get("/livez", async () => ({ status: "ok" }));
  // An app with a readiness document of its own (the ML Service) registers /health itself.
  if (options.health !== false) app.get("/health", async (_request, reply) => {
    if (!options.health) return { status: "ok" };
    try {
      return { status: "ok", ...(await options.health()) };
    } catch (error) {
      return reply.code(503).send({ status: "unavailable", error: error instanceof Error ? error.message : String(error) });
    }
  });
  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await renderMetrics(options.registries);
    return reply.type(contentType).send(body);
  });
  return app;
}

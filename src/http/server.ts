/**
 * The HTTP shell every component shares (the ML Service included): JSON error answers with stable
 * codes for every failure, fastify's and Node's own too (never a stack trace or an internal
 * detail), body parsing (the guide's curl sends JSON as form-urlencoded), CORS for configured
 * origins only, optional per-IP rate limit, request metrics, /livez, /health and /metrics.
 */
import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import { AppError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { counter, histogram, renderMetrics, type Registry } from "../observability/metrics.js";
import { registerCors } from "./cors.js";
import { clientErrorAnswer, discardBody, sendError, toAppError } from "./error-answers.js";

export { sendError, toAppError, OPENAI_PREFIX } from "./error-answers.js";

export interface HttpAppOptions {
  logger: Logger;
  /** Registries whose metrics /metrics serves (the app's own request metrics go into the first). */
  registries: Registry[];
  bodyLimitBytes?: number;
  /** `CommonConfig.corsOrigins`: the one CORS setting, the same for every component. */
  corsOrigins?: readonly string[];
  rateLimitPerIpPerMinute?: number;
  /** False when METRICS_PORT serves /metrics: then this (public) port does not. */
  metricsInline?: boolean;
  /**
   * Readiness: resolves with what /health shows when ready; throws when not (→ 503). A thrown
   * NotReady chooses the public body; any other error is logged and shows nothing but "unavailable".
   * It must settle within HEALTH_TIMEOUT_MS, or /health answers 503 without waiting longer.
   */
  health?: (() => Promise<Record<string, unknown>>) | false;
  /** Accept only `application/json` bodies (others 415) instead of also JSON sent as text or form. */
  jsonOnly?: boolean;
  /** Called for every error answer (for metrics by code, say). */
  onErrorAnswer?: (error: AppError, request: FastifyRequest) => void;
}

/** /health answers within a second even when a dependency hangs. */
export const HEALTH_TIMEOUT_MS = 800;

/** Thrown by a health check: the service is not ready; `body` is what /health may show. */
export class NotReady extends Error {
  constructor(
    readonly body: Record<string, unknown>,
    readonly retryAfterSeconds?: number,
  ) {
    super("not ready");
    this.name = "NotReady";
  }
}

/**
 * Runs named dependency checks in parallel, each bounded by `timeoutMs`; throws NotReady naming the
 * ones that failed (`{ status: "unavailable", down: [...] }`), their errors go to `onFailure`.
 */
export async function probeDependencies(
  checks: Record<string, () => Promise<unknown>>,
  options: { timeoutMs?: number; onFailure?: (name: string, error: unknown) => void } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? HEALTH_TIMEOUT_MS - 100;
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name) => {
      try {
        await withTimeout((checks[name] as () => Promise<unknown>)(), timeoutMs);
        return undefined;
      } catch (error) {
        options.onFailure?.(name, error);
        return name;
      }
    }),
  );
  const down = results.filter((n): n is string => n !== undefined);
  if (down.length > 0) throw new NotReady({ status: "unavailable", down });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const JSON_LIKE = ["application/json", "application/x-www-form-urlencoded", "text/plain"];

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
    // fastify's own 503 while closing is not in our shape: the hook below answers instead.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    // fastify's own answers (bad URL encoding, too long a path parameter, Node's parser errors) in our shape.
    frameworkErrors: (error, request, reply) => void sendError(reply, toAppError(error)),
    clientErrorHandler: clientErrorAnswer,
  });
  const registry = options.registries[0];

  // One parser for JSON-ish bodies: read as text, then JSON.parse with our own error.
  app.removeContentTypeParser(["application/json", "text/plain"]);
  app.addContentTypeParser(options.jsonOnly ? "application/json" : JSON_LIKE, { parseAs: "string" }, (_req, body, done) => {
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

  registerCors(app, options.corsOrigins ?? []);

  // Requests still arriving on open connections while the server closes (pipelined or keep-alive)
  // are refused at once, so a load balancer sends them elsewhere; running ones finish.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (_request, reply) => {
    if (closing) return sendError(reply, new AppError("service_unavailable", "the service is shutting down; retry", { retryAfterSeconds: 1 }));
  });

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

  app.setErrorHandler(async (error: FastifyError | Error, request, reply) => {
    const appError = toAppError(error);
    if (appError.code === "internal_error") request.log.error({ err: error, request_id: request.id }, "request failed");
    else if (appError.status >= 500) {
      request.log.warn({ code: appError.code, reason: appError.message, ...appError.internal, request_id: request.id }, "request refused");
    }
    options.onErrorAnswer?.(appError, request);
    // A refused body (413, 415) may still be arriving: read the rest first, or the client's write fails.
    await discardBody(request.raw);
    return sendError(reply, appError);
  });

  const methodsOf = routeMethods(app);
  app.setNotFoundHandler(async (request, reply) => {
    await discardBody(request.raw);
    const path = request.url.split("?")[0] ?? "";
    const allowed = methodsOf(path);
    const appError =
      allowed.length > 0
        ? new AppError("method_not_allowed", `${request.method} is not allowed on ${path.slice(0, 200)}; use ${allowed.join(" or ")}`)
        : new AppError("not_found", `no route ${request.method} ${path.slice(0, 200)}`);
    if (allowed.length > 0) void reply.header("Allow", allowed.join(", "));
    options.onErrorAnswer?.(appError, request);
    return sendError(reply, appError);
  });

  app.get("/livez", async () => ({ status: "ok" }));
  // `health: false`: an app with a readiness document of its own (the ML Service) registers /health itself.
  const health = options.health;
  if (health !== false) app.get("/health", async (request, reply) => {
    if (!health) return { status: "ok" };
    try {
      return { status: "ok", ...(await withTimeout(health(), HEALTH_TIMEOUT_MS)) };
    } catch (error) {
      if (error instanceof NotReady) {
        if (error.retryAfterSeconds !== undefined) void reply.header("Retry-After", String(error.retryAfterSeconds));
        return reply.code(503).send({ status: "unavailable", ...error.body });
      }
      // The error names hosts and ports (connect ECONNREFUSED 10.0.0.7:5432): the log's, not the answer's.
      request.log.warn({ err: error }, "health check failed");
      return reply.code(503).send({ status: "unavailable" });
    }
  });
  if (options.metricsInline !== false) {
    app.get("/metrics", async (_request, reply) => {
      const { contentType, body } = await renderMetrics(options.registries);
      return reply.type(contentType).send(body);
    });
  }
  return app;
}

/** The methods registered for a concrete path (`/api/v1/requests/123` matches `/api/v1/requests/:id`). */
function routeMethods(app: FastifyInstance): (path: string) => string[] {
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  app.addHook("onRoute", (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map(String);
    const source = route.url
      .split("/")
      .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment === "*" ? ".*" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/");
    routes.push({ pattern: new RegExp(`^${source}/?$`), methods });
  });
  return (path) => [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))].sort();
}

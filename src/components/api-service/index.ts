/**
 * API Service: status and result of a request, the caller's quota, and Server-Sent Events that
 * deliver the outcome. Any replica can serve any client: events fan out through the EventBus, and a
 * client that connects after completion still gets the final event (read from the database).
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { AppError } from "../../errors.js";
import type { ApiServiceConfig } from "../../config.js";
import type { RequestEvent } from "../../domain/contracts.js";
import type { EventBus, QuotaLimits, QuotaStore, RequestStore, RequestStreams, RequestView } from "../../domain/ports.js";
import { relayTokenEvents } from "./token-events.js";
import { startEventStream } from "../../http/sse.js";
import { registerRequestList } from "./request-list.js";
import type { AuthenticatedUser, Authenticator } from "../../http/authenticator.js";
import { probeDependencies, sendError } from "../../http/server.js";
import { BatchLoader } from "../../domain/batching.js";
import type { Logger } from "../../observability/logger.js";
import { gauge, type Registry } from "../../observability/metrics.js";

export interface ApiServiceDeps {
  logger: Logger;
  registry: Registry;
  auth: Authenticator;
  quota: QuotaStore;
  requests: RequestStore;
  events: EventBus;
  streams: RequestStreams;
  now?: () => Date;
}

export interface ApiService {
  register(app: FastifyInstance): void;
  health(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [{ type: "null" }, schema] });
const usageSchema = {
  type: "object",
  properties: { prompt_tokens: { type: "integer" }, completion_tokens: { type: "integer" }, total_tokens: { type: "integer" } },
};
/** Response schema of the status route: fastify compiles it into a serializer (faster than JSON.stringify). */
export const STATUS_SCHEMA = {
  type: "object",
  properties: {
    request_id: { type: "string" },
    status: { type: "string" },
    model: { type: "string" },
    created_at: { type: "string" },
    started_at: nullable({ type: "string" }),
    completed_at: nullable({ type: "string" }),
    estimated_tokens: { type: "integer" },
    result: nullable({
      type: "object",
      properties: { output_text: nullable({ type: "string" }), outputs: { type: "array", items: { type: "string" } } },
    }),
    usage: nullable(usageSchema),
    error: nullable({ type: "object", properties: { code: { type: "string" }, message: { type: "string" } } }),
  },
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FINAL = new Set(["completed", "failed", "cancelled"]);

/** A Last-Event-ID header as the seq to resume after (0: from the start). */
function lastEventId(header: string | string[] | undefined): number {
  const value = Number(Array.isArray(header) ? header[0] : header);
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}

export function statusBody(r: RequestView) {
  return {
    request_id: r.requestId,
    status: r.status,
    model: r.model,
    created_at: r.createdAt.toISOString(),
    started_at: r.startedAt?.toISOString() ?? null,
    completed_at: r.completedAt?.toISOString() ?? null,
    estimated_tokens: r.estimatedTokens,
    result: r.status === "completed" || r.status === "cancelled" ? { output_text: r.outputText, ...(r.outputs ? { outputs: r.outputs } : {}) } : null,
    usage: r.usage,
    error: r.error,
  };
}

function limitsBody(limits: QuotaLimits) {
  return {
    daily: { requests: limits.dailyRequests, tokens: limits.dailyTokens },
    monthly: { requests: limits.monthlyRequests, tokens: limits.monthlyTokens },
  };
}

/** A dependency failing under a read is a 503 the client may retry, never a 500. */
function unavailable(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError("service_unavailable", "a backing service is unavailable; try again", { retryAfterSeconds: 1, cause: error });
}

export function createApiService(config: ApiServiceConfig, deps: ApiServiceDeps): ApiService {
  const now = deps.now ?? (() => new Date());
  const log = deps.logger.child({ component: "api-service" });
  const sseClients = gauge(deps.registry, { name: "sse_clients_connected", help: "Clients connected to /events"});
  const open = new Set<() => void>();

  // Concurrent status lookups share one query (one round trip for up to 64 ids).
  const views = new BatchLoader<string, RequestView>(
    async (ids) => new Map((await deps.requests.viewMany(ids)).map((view) => [view.requestId, view])),
    { maxBatch: 64, maxInFlight: 2 },
  );

  async function ownRequest(id: string, user: AuthenticatedUser): Promise<RequestView> {
    if (!UUID.test(id)) throw new AppError("invalid_request_id", "the request id must be a UUID");
    const found = await views.load(id.toLowerCase());
    // Someone else's request is answered exactly like a missing one: ids do not leak.
    if (!found || found.userId !== user.userId) throw new AppError("request_not_found", `no request ${id}`);
    return found;
  }

  async function streamEvents(reply: FastifyReply, initial: RequestView, requestId: string): Promise<void> {
    const raw = startEventStream(reply);
    let closed = false;
    let eventId = 0;
    const send = (name: string, data: unknown) => {
      if (!closed) raw.write(`id: ${++eventId}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    let unsubscribe: (() => Promise<void>) | undefined;
    // Each heartbeat also reads the request again: an outcome whose event was lost (a pub/sub
    // reconnect, a failed publish) still reaches the client, one heartbeat late.
    const heartbeat = setInterval(() => {
      if (closed) return;
      raw.write(`: heartbeat ${now().toISOString()}\n\n`);
      void deps.requests
        .view(requestId)
        .then(async (latest) => {
          if (latest && FINAL.has(latest.status)) await deliverFinal();
        })
        .catch(() => undefined);
    }, config.sseHeartbeatMs);
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      open.delete(close);
      sseClients.dec();
      void unsubscribe?.().catch(() => undefined);
      raw.end();
    };
    open.add(close);
    sseClients.inc();
    raw.on("close", close);
    raw.write("retry: 2000\n\n");

    let finished = false;
    const deliverFinal = async () => {
      if (finished) return;
      finished = true;
      const latest = await deps.requests.view(requestId);
      if (latest) send(latest.status, statusBody(latest));
      close();
    };
    const onEvent = (event: RequestEvent) => {
      if (event.final || FINAL.has(event.status)) void deliverFinal().catch(close);
      else send(event.status, { request_id: requestId, status: event.status });
    };
    try {
      // Subscribe before reading the state again, so an outcome landing in between is not missed.
      const unsubscribeNow = await deps.events.subscribe(requestId, onEvent);
      unsubscribe = unsubscribeNow;
      if (closed) {
        // The client left while the subscription was being made; close() could not undo it then.
        await unsubscribeNow();
        return;
      }
      const current = (await deps.requests.view(requestId)) ?? initial;
      if (FINAL.has(current.status)) await deliverFinal();
      else send(current.status, { request_id: requestId, status: current.status });
    } catch (error) {
      log.warn({ err: error, request_id: requestId }, "event stream failed");
      send("error", { error: { code: "service_unavailable", message: "event stream interrupted; reconnect or poll status_url" } });
      close();
    }
  }

  return {
    register(app) {
      app.get<{ Params: { id: string } }>("/api/v1/status/:id", { schema: { response: { 200: STATUS_SCHEMA } } }, async (request, reply) => {
        try {
          const user = await deps.auth.authenticate(request.headers.authorization);
          return statusBody(await ownRequest(request.params.id, user));
        } catch (error) {
          return sendError(reply, unavailable(error));
        }
      });

      registerRequestList(app, { auth: deps.auth, requests: deps.requests, statusBody, fail: (reply, error) => sendError(reply, unavailable(error)) });

      app.get("/api/v1/quota", async (request, reply) => {
        try {
          const user = await deps.auth.authenticate(request.headers.authorization);
          const usage = await deps.quota.usage(user.userId, now());
          return {
            user_id: user.userId,
            limits: limitsBody(user.limits),
            window: usage.window,
            daily: { requests: usage.daily.requests, tokens_used: usage.daily.tokensUsed, tokens_reserved: usage.daily.tokensReserved },
            monthly: { requests: usage.monthly.requests, tokens_used: usage.monthly.tokensUsed, tokens_reserved: usage.monthly.tokensReserved },
            resets: { daily: usage.dailyResetAt.toISOString(), monthly: usage.monthlyResetAt.toISOString() },
          };
        } catch (error) {
          return sendError(reply, unavailable(error));
        }
      });

      // EventSource cannot set headers, so the key may also come as ?access_token=. With
      // ?tokens=true a streamed request's token deltas come as `token` events whose id is their seq:
      // a reconnect with Last-Event-ID resumes after it. (Submitted without `stream: true`, a request
      // has no token stream: its status events only.)
      app.get<{ Params: { id: string }; Querystring: { access_token?: string; tokens?: string } }>("/events/:id", async (request, reply) => {
        try {
          const token = typeof request.query.access_token === "string" ? request.query.access_token : undefined;
          const user = await deps.auth.authenticate(request.headers.authorization, token);
          const found = await ownRequest(request.params.id, user);
          if (request.query.tokens === "true" && found.streamTokens) {
            await relayTokenEvents(reply, found, lastEventId(request.headers["last-event-id"]), {
              streams: deps.streams,
              events: deps.events,
              requests: deps.requests,
              log,
              heartbeatMs: config.sseHeartbeatMs,
              open,
              statusBody,
            });
            return;
          }
          await streamEvents(reply, found, found.requestId);
        } catch (error) {
          return sendError(reply, unavailable(error));
        }
      });
    },
    async health() {
      await probeDependencies(
        { quota_store: () => deps.quota.ping(), database: () => deps.requests.ping() },
        { onFailure: (name, err) => log.warn({ err, dependency: name }, "health: dependency down") },
      );
      return { component: "api-service" };
    },
    async stop() {
      for (const close of [...open]) close();
    },
  };
}

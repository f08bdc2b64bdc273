/**
 * API Gateway: POST /api/v1/inference. Authenticate, validate, estimate, reserve quota atomically,
 * store the request, publish it with a confirm, answer 202 at once. Any failure after the
 * reservation gives it back and leaves nothing half-written.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { AppError, isAppError } from "../../errors.js";
import type { GatewayConfig } from "../../config.js";
import { encodeMessage } from "../../domain/contracts.js";
import { requestMessageOf } from "../../domain/request-message.js";
import { estimateTokens, parseInferenceBody } from "../../domain/inference-request.js";
import type { EventBus, MessageQueue, NewRequest, Outbox, QuotaStore, RequestStore, StaleRequests } from "../../domain/ports.js";
import type { Authenticator } from "../../http/authenticator.js";
import { probeDependencies, sendError } from "../../http/server.js";
import type { Logger } from "../../observability/logger.js";
import { counter, gauge, histogram, type Registry } from "../../observability/metrics.js";
import { PublishedMarker } from "./published-marker.js";
import { Batcher } from "../../domain/batching.js";
import { Sweeper } from "./sweeper.js";

export interface GatewayDeps {
  logger: Logger;
  registry: Registry;
  auth: Authenticator;
  quota: QuotaStore;
  requests: RequestStore;
  outbox: Outbox;
  stale: StaleRequests;
  queue: MessageQueue;
  events: EventBus;
  requestsQueue: string;
  models: readonly string[];
  now?: () => Date;
}

export interface Gateway {
  register(app: FastifyInstance): void;
  /** Starts the sweeper's timer (the factory starts nothing). */
  start(): void;
  health(): Promise<Record<string, unknown>>;
  /** Runs the sweeper once now (it also runs on its own every SWEEP_INTERVAL_MS). */
  sweep(): Promise<{ republished: number; expired: number }>;
  stop(): Promise<void>;
}

export function createGateway(config: GatewayConfig, deps: GatewayDeps): Gateway {
  const now = deps.now ?? (() => new Date());
  const log = deps.logger.child({ component: "gateway" });
  const admissions = counter(deps.registry, {
    name: "gateway_admissions_total",
    help: "Inference requests by admission result (accepted, or the rejection reason)",
    labelNames: ["result"]});
  const admissionSeconds = histogram(deps.registry, {
    name: "gateway_admission_seconds",
    help: "Time to admit a request (reserve + store + confirmed publish)",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]});
  const published = counter(deps.registry, {
    name: "messages_published_total",
    help: "Messages published with a broker confirm, by queue",
    labelNames: ["queue"]});
  const openGauge = gauge(deps.registry, {
    name: "quota_reservations_open",
    help: "Requests admitted and not yet finished (their quota reservations are open)"});
  const marker = new PublishedMarker(deps.outbox, log);
  // Concurrent admissions share INSERT statements: one round trip and one commit for many rows.
  const inserts = new Batcher<NewRequest>((rows) => deps.requests.insertMany(rows));
  const sweeper = new Sweeper(config, { ...deps, logger: log, now, openGauge, published });

  async function admit(body: unknown, authorization: string | undefined) {
    const user = await deps.auth.authenticate(authorization);
    const input = parseInferenceBody(body, {
      maxPromptChars: config.maxPromptChars,
      models: deps.models,
      defaultModel: config.defaultModel,
      maxLength: config.maxLengthLimit,
    });
    const requestId = randomUUID();
    const createdAt = now();
    const estimatedTokens = estimateTokens(input.prompt, input.params);
    const reservation = await unavailableOnFailure("quota store", () =>
      deps.quota.reserve({ userId: user.userId, requestId, tokens: estimatedTokens, limits: user.limits, now: createdAt }),
    );
    if (!reservation.ok) {
      throw new AppError("quota_exceeded", `quota exceeded: ${reservation.limit} (${reservation.current} of ${reservation.limitValue} used)`, {
        retryAfterSeconds: reservation.retryAfterSeconds,
        details: { limit: reservation.limit, limit_value: reservation.limitValue, current: reservation.current, requested_tokens: estimatedTokens },
      });
    }
    // Tried a few times: with no stored request nothing else would ever give this reservation back.
    const release = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await deps.quota.release({ userId: user.userId, requestId });
          return;
        } catch (error) {
          if (attempt === 3) {
            log.error({ err: error, request_id: requestId, user_id: user.userId }, "could not release a reservation; it stays until its window ends");
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
        }
      }
    };
    const request: NewRequest = {
      requestId,
      userId: user.userId,
      model: input.model,
      prompt: input.prompt,
      params: input.params,
      estimatedTokens,
      window: reservation.window,
      createdAt,
    };
    try {
      await unavailableOnFailure("database", () => inserts.add(request));
    } catch (error) {
      await release();
      throw error;
    }
    const message = requestMessageOf(request);
    try {
      await unavailableOnFailure("message broker", () => deps.queue.publish(deps.requestsQueue, encodeMessage(message)));
      published.inc({ queue: deps.requestsQueue });
      marker.add(requestId);
    } catch (error) {
      let removed: boolean | undefined;
      try {
        removed = await deps.outbox.deleteUnpublished(requestId);
      } catch (deleteError) {
        // The row stays and the sweeper will publish it; its reservation must stay with it, so the
        // request is charged when it runs. The client hears 503 and may send it again.
        log.error({ err: deleteError, request_id: requestId }, "could not remove an unpublished request; it will run later");
        throw error;
      }
      // Nothing to remove: the sweeper published the row meanwhile, so the request is queued after all.
      if (!removed) return { requestId, user, createdAt, estimatedTokens, input };
      await release();
      throw error;
    }
    log.info({ request_id: requestId, user_id: user.userId, estimated_tokens: estimatedTokens }, "request admitted");
    return { requestId, user, createdAt, estimatedTokens, input };
  }

  return {
    register(app) {
      app.post("/api/v1/inference", async (request, reply) => {
        const started = process.hrtime.bigint();
        try {
          const admitted = await admit(request.body, request.headers.authorization);
          admissions.inc({ result: "accepted" });
          admissionSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
          const id = admitted.requestId;
          return reply
            .code(202)
            .header("Location", `/api/v1/status/${id}`)
            .send({
              request_id: id,
              status: "queued",
              status_url: `/api/v1/status/${id}`,
              events_url: `/events/${id}`,
              sse_endpoint: `/events/${id}`,
              model: admitted.input.model,
              estimated_tokens: admitted.estimatedTokens,
              user_id: admitted.user.userId,
              timestamp: admitted.createdAt.toISOString(),
            });
        } catch (error) {
          const appError = isAppError(error) ? error : new AppError("internal_error", "internal error");
          admissions.inc({ result: appError.code });
          if (!isAppError(error)) log.error({ err: error }, "admission failed");
          return sendError(reply, appError);
        }
      });
    },
    async health() {
      await probeDependencies(
        { quota_store: () => deps.quota.ping(), database: () => deps.requests.ping(), broker: () => deps.queue.ping() },
        { onFailure: (name, err) => log.warn({ err, dependency: name }, "health: dependency down") },
      );
      return { component: "gateway" };
    },
    start: () => sweeper.start(),
    sweep: () => sweeper.sweep(),
    async stop() {
      await sweeper.stop();
      await marker.flush();
    },
  };
}

/** A dependency that fails at admission is a 503 for the client, never a 500. */
async function unavailableOnFailure<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isAppError(error) && error.code !== "service_unavailable") throw error;
    throw new AppError("service_unavailable", `${what} unavailable; nothing was stored or charged, try again`, {
      retryAfterSeconds: 1,
      cause: error,
    });
  }
}

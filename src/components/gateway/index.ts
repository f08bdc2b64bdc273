/**
 * API Gateway: every submit route. POST /api/v1/inference answers 202 at once; the OpenAI routes
 * (openai/routes.ts) hold the connection until the answer is complete. Both admit the same way
 * (admission.ts): authenticate, validate, estimate, reserve quota atomically, store, publish with a
 * confirm. Cancels (cancel.ts) and the sweeper live here too.
 */
import type { FastifyInstance } from "fastify";
import { AppError, isAppError } from "../../errors.js";
import type { GatewayConfig } from "../../config.js";
import { parseInferenceBody } from "../../domain/inference-request.js";
import type { EventBus, MessageQueue, NewRequest, Outbox, QuotaStore, RequestStore, RequestStreams, RequestView, RunStates, StaleRequests, UserStore } from "../../domain/ports.js";
import type { AuthenticatedUser, Authenticator } from "../../http/authenticator.js";
import { probeDependencies, sendError } from "../../http/server.js";
import type { Logger } from "../../observability/logger.js";
import { counter, gauge, histogram, type Registry } from "../../observability/metrics.js";
import { PublishedMarker } from "./published-marker.js";
import { Batcher } from "../../domain/batching.js";
import { Sweeper } from "./sweeper.js";
import { createAdmission, idempotencyKeyOf, unavailableOnFailure, type Admitted } from "./admission.js";
import { createCanceller } from "./cancel.js";
import { registerOpenAiRoutes } from "./openai/routes.js";
import { BatchDispatcher, batchUserResolver, registerBatchRoutes } from "./batches/index.js";
import { BatchMetrics } from "./batches/metrics.js";
import type { BatchStore } from "../../domain/batches.js";
import type { BacklogStats } from "../../domain/ports.js";
import { etaBody } from "../../domain/queue-estimate.js";
import { QueueEstimator, registerQueueRoute } from "./queue-estimator.js";
import { registerAdminRoutes } from "./admin/index.js";
import type { WebhookStore } from "../../domain/webhooks.js";
import { WebhookDeliveryLoop, registerWebhookRoutes } from "../webhooks/index.js";

/** How often a held connection reads its request again in case its final event was lost. */
const HOLD_RECHECK_MS = 2_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The batch backlog gauge is scraped every several seconds: counting it once a second is enough. */
const BATCH_GAUGE_MIN_INTERVAL_MS = 1_000;

export interface GatewayDeps {
  logger: Logger;
  registry: Registry;
  auth: Authenticator;
  quota: QuotaStore;
  requests: RequestStore;
  batches: BatchStore;
  backlog: BacklogStats;
  webhooks: WebhookStore;
  users: UserStore;
  outbox: Outbox;
  stale: StaleRequests;
  queue: MessageQueue;
  events: EventBus;
  streams: RequestStreams;
  runs: RunStates;
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
  sweep(): Promise<{ republished: number; expired: number; expiredFiles: number }>;
  /** Runs the batch dispatcher once now (it also runs on its own every BATCH_DISPATCH_INTERVAL_MS). */
  tickBatches(): Promise<unknown>;
  /** Runs the webhook delivery loop once now (it also runs on its own every WEBHOOK_POLL_INTERVAL_MS). */
  tickWebhooks(): Promise<unknown>;
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
  // A request id twice in one batch (one Idempotency-Key sent twice at once) is inserted by the first.
  const inserts = new Batcher<{ request: NewRequest; answer: (inserted: boolean) => void }>(async (items) => {
    const { inserted } = await deps.requests.insertMany(items.map((item) => item.request));
    for (const item of items) item.answer(inserted.delete(item.request.requestId));
  });
  const insert = (request: NewRequest) =>
    new Promise<boolean>((resolve, reject) => {
      let inserted = false;
      inserts.add({ request, answer: (value) => (inserted = value) }).then(() => resolve(inserted), reject);
    });
  const sweeper = new Sweeper(config, { ...deps, logger: log, now, openGauge, published });
  const estimator = new QueueEstimator({ stats: deps.backlog, log, ...config.queueEstimate, now });
  const admit = createAdmission({
    log,
    quota: deps.quota,
    requests: deps.requests,
    outbox: deps.outbox,
    queue: deps.queue,
    requestsQueue: deps.requestsQueue,
    insert,
    marker,
    onPublished: () => published.inc({ queue: deps.requestsQueue }),
    estimator,
    now,
  });
  const fail = (reply: import("fastify").FastifyReply, error: unknown) => {
    const appError = isAppError(error) ? error : new AppError("internal_error", "internal error");
    if (!isAppError(error)) log.error({ err: error }, "request failed");
    return sendError(reply, appError);
  };
  // Batch lines are admitted like any call of their endpoint, when the dispatcher reaches them.
  const batchDispatcher = new BatchDispatcher({
    config,
    log,
    store: deps.batches,
    admit: (input) => timed(() => admit(input)),
    requests: deps.requests,
    userOf: batchUserResolver(deps.users, config.anonymous),
    models: deps.models,
    events: deps.events,
    now,
  });
  // Lines ended and batches finished are counted as the store reports them; the backlog is read with the queue's.
  const batchMetrics = new BatchMetrics({ registry: deps.registry, store: deps.batches, models: deps.models, intervalMs: Math.max(BATCH_GAUGE_MIN_INTERVAL_MS, config.queueEstimate.intervalMs), log });
  // Webhooks are sent off every request's path: a slow or failing receiver delays nothing but its own deliveries.
  const webhookLoop = new WebhookDeliveryLoop({ config: config.webhooks, store: deps.webhooks, log, registry: deps.registry, now });
  const cancel = createCanceller({ ...deps, log, now, recheckMs: HOLD_RECHECK_MS });

  /** The caller's own request; anyone else's is answered exactly like a missing one. */
  async function ownRequest(id: string, user: AuthenticatedUser): Promise<RequestView> {
    if (!UUID.test(id)) throw new AppError("invalid_request_id", "the request id must be a UUID");
    const found = await unavailableOnFailure("database", () => deps.requests.view(id.toLowerCase()));
    if (!found || found.userId !== user.userId) throw new AppError("request_not_found", `no request ${id}`);
    return found;
  }

  /** Counts an admission's result and its time. */
  async function timed<T>(work: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      const result = await work();
      admissions.inc({ result: "accepted" });
      admissionSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return result;
    } catch (error) {
      admissions.inc({ result: isAppError(error) ? error.code : "internal_error" });
      throw error;
    }
  }

  const accepted = (admitted: Admitted, model: string, user: AuthenticatedUser) => {
    const id = admitted.requestId;
    return {
      request_id: id,
      status: admitted.existing?.status ?? "queued",
      status_url: `/api/v1/status/${id}`,
      events_url: `/events/${id}`,
      sse_endpoint: `/events/${id}`,
      cancel_url: `/api/v1/inference/${id}/cancel`,
      model,
      estimated_tokens: admitted.estimatedTokens,
      user_id: user.userId,
      timestamp: admitted.createdAt.toISOString(),
      ...etaBody(admitted.estimate ?? null),
    };
  };

  return {
    register(app) {
      app.post("/api/v1/inference", async (request, reply) => {
        try {
          const user = await deps.auth.authenticate(request.headers.authorization);
          const key = idempotencyKeyOf(request.headers["idempotency-key"]);
          const input = parseInferenceBody(request.body, {
            maxPromptChars: config.maxPromptChars,
            models: deps.models,
            defaultModel: config.defaultModel,
            maxLength: config.maxLengthLimit,
          });
          const admitted = await timed(() =>
            admit({
              user,
              api: "inference",
              model: input.model,
              prompt: input.prompt,
              params: input.params,
              streamTokens: input.stream,
              ...(key ? { idempotency: { key, route: "/api/v1/inference", body: request.body } } : {}),
              traceparent: request.headers.traceparent,
              ...(input.maxQueueSeconds !== undefined ? { maxQueueSeconds: input.maxQueueSeconds } : {}),
            }),
          );
          return reply
            .code(admitted.existing ? 200 : 202)
            .header("Location", `/api/v1/status/${admitted.requestId}`)
            .send(accepted(admitted, input.model, user));
        } catch (error) {
          return fail(reply, error);
        }
      });

      app.post<{ Params: { id: string } }>("/api/v1/inference/:id/cancel", async (request, reply) => {
        try {
          const user = await deps.auth.authenticate(request.headers.authorization);
          const found = await ownRequest(request.params.id, user);
          const after = await unavailableOnFailure("quota store", () => cancel(found));
          return { request_id: after.requestId, status: after.status, usage: after.usage, error: after.error };
        } catch (error) {
          return fail(reply, error);
        }
      });

      registerQueueRoute(app, { auth: deps.auth, stats: deps.backlog, estimator, fail, now });
      registerAdminRoutes(app, { adminApiKey: config.adminApiKey, log, users: deps.users, backlog: deps.backlog, queue: deps.queue, requestsQueue: deps.requestsQueue, now });
      registerWebhookRoutes(app, { config: config.webhooks, log, auth: deps.auth, store: deps.webhooks });
      registerBatchRoutes(app, { config, log, auth: deps.auth, store: deps.batches, quota: deps.quota, batchCreated: () => batchDispatcher.validateSoon(), now });
      registerOpenAiRoutes(app, {
        config,
        log,
        auth: deps.auth,
        admit: (input) => timed(() => admit(input)),
        cancel,
        ownRequest,
        quota: deps.quota,
        requests: deps.requests,
        events: deps.events,
        streams: deps.streams,
        models: deps.models,
        now,
        recheckMs: HOLD_RECHECK_MS,
        fail,
      });
    },
    async health() {
      await probeDependencies(
        { quota_store: () => deps.quota.ping(), database: () => deps.requests.ping(), broker: () => deps.queue.ping() },
        { onFailure: (name, err) => log.warn({ err, dependency: name }, "health: dependency down") },
      );
      return { component: "gateway" };
    },
    start: () => {
      sweeper.start();
      batchDispatcher.start();
      batchMetrics.start();
      estimator.start();
      webhookLoop.start();
    },
    sweep: () => sweeper.sweep(),
    tickBatches: () => batchDispatcher.tick(),
    tickWebhooks: () => webhookLoop.tick(),
    async stop() {
      estimator.stop();
      await batchDispatcher.stop();
      await batchMetrics.stop();
      await webhookLoop.stop();
      await sweeper.stop();
      await marker.flush();
    },
  };
}


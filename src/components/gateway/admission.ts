/**
 * Admission, shared by every submit route (`/api/v1/inference` and the OpenAI routes): reserve the
 * quota atomically, store the request, publish it with a confirm. Any failure after the reservation
 * gives it back and removes the row: the client hears 503 and nothing was stored or charged. The one
 * exception is a row that cannot be removed (the database failed too): it stays in the outbox, the
 * sweeper publishes it, and the client hears 202, since the request will run. An Idempotency-Key names the request's id, so a
 * repeat (also one that arrives at the same moment) finds the same reservation and the same row.
 */
import { createHash, randomUUID } from "node:crypto";
import { AppError, isAppError } from "../../errors.js";
import { encodeMessage, type ChatMessage } from "../../domain/contracts.js";
import type { GenerationParams } from "../../domain/generation-params.js";
import { estimateTokens } from "../../domain/inference-request.js";
import { requestMessageOf } from "../../domain/request-message.js";
import type { MessageQueue, NewRequest, Outbox, QuotaCounts, QuotaStore, RequestApi, RequestStore, RequestView } from "../../domain/ports.js";
import type { AuthenticatedUser } from "../../http/authenticator.js";
import type { Logger } from "../../observability/logger.js";
import { extract, SpanKind, withSpan, withTraceHeaders, type Span } from "../../observability/tracing.js";
import type { PublishedMarker } from "./published-marker.js";
import type { Estimate } from "../../domain/queue-estimate.js";
import type { QueueEstimator } from "./queue-estimator.js";

export interface AdmissionInput {
  user: AuthenticatedUser;
  api: RequestApi;
  model: string;
  /** The text the estimate is made from (for chat: the messages' contents). */
  prompt: string;
  messages?: ChatMessage[];
  params: GenerationParams;
  streamTokens: boolean;
  apiOptions?: Record<string, unknown>;
  /** The Idempotency-Key header as sent, and what it must match (the route and the raw body). */
  idempotency?: { key: string; route: string; body: unknown };
  /** The client's W3C traceparent header, which the admission span continues (else a new trace). */
  traceparent?: string | string[];
  /** max_queue_seconds: refused when the estimated wait is longer; failed deadline_exceeded if still queued after it. */
  maxQueueSeconds?: number;
}

export interface Admitted {
  requestId: string;
  createdAt: Date;
  estimatedTokens: number;
  /** Set when an Idempotency-Key found the request an earlier call admitted (nothing new was reserved). */
  existing?: RequestView;
  /** The user's windows with this reservation in them (for the rate-limit headers); absent for a repeat. */
  counts?: QuotaCounts;
  /** When the request should start and finish, from the queue ahead of it (null: no measurement yet). */
  estimate?: Estimate | null;
}

export interface AdmissionDeps {
  log: Logger;
  quota: QuotaStore;
  requests: RequestStore;
  outbox: Outbox;
  queue: MessageQueue;
  requestsQueue: string;
  /** Stores the request (batched with concurrent ones); false when its id was stored already. */
  insert: (request: NewRequest) => Promise<boolean>;
  marker: PublishedMarker;
  onPublished: () => void;
  /** The queue ahead: estimates, deadlines, and this admission counted into the backlog. */
  estimator: Pick<QueueEstimator, "estimate" | "checkDeadline" | "admitted">;
  now: () => Date;
}

/** Tokens a chat template may add per message (role markers, separators), counted into the estimate. */
export const CHAT_TEMPLATE_TOKENS_PER_MESSAGE = 16;

const VISIBLE_ASCII = /^[\x21-\x7e]{1,255}$/;

/** The header, checked: undefined when absent. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const key = Array.isArray(header) ? header[0] : header;
  if (key === undefined || !VISIBLE_ASCII.test(key)) {
    throw new AppError("invalid_idempotency_key", "the Idempotency-Key header must be 1 to 255 visible ASCII characters");
  }
  return key;
}

/** The request id a user's key names: the same user and key always name the same request. */
export function idempotentRequestId(userId: string, key: string): string {
  const h = createHash("sha256").update(`${userId}\n${key}`).digest("hex");
  // Formatted as a UUID of version 8 (custom), variant 10.
  const variant = ((parseInt(h[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const bodyHash = (route: string, body: unknown) => createHash("sha256").update(`${route}\n${JSON.stringify(body)}`).digest("base64url");

/** A dependency that fails at admission is a 503 for the client, never a 500. */
export async function unavailableOnFailure<T>(what: string, work: () => Promise<T>): Promise<T> {
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

export function createAdmission(deps: AdmissionDeps) {
  const { log } = deps;

  /** The earlier request of this key, or a 409 when the key came with another route or body. */
  async function earlier(requestId: string, hash: string): Promise<RequestView> {
    const found = await unavailableOnFailure("database", () => deps.requests.view(requestId));
    if (!found) throw new AppError("service_unavailable", "the earlier request of this Idempotency-Key is not readable yet; try again", { retryAfterSeconds: 1 });
    if (found.idempotencyHash !== hash) {
      throw new AppError("idempotency_key_reused", "this Idempotency-Key was already used for a different request (route or body)", {
        details: { field: "Idempotency-Key" },
      });
    }
    return found;
  }

  // The admission span (the no-op one with tracing off) carries on to the worker in the message's headers.
  const admit = (input: AdmissionInput): Promise<Admitted> =>
    withSpan("admission", { parent: extract({ traceparent: input.traceparent }), kind: SpanKind.PRODUCER }, (span) => admitTraced(input, span));
  return admit;

  async function admitTraced(input: AdmissionInput, span: Span): Promise<Admitted> {
    const { user } = input;
    const hash = input.idempotency ? bodyHash(input.idempotency.route, input.idempotency.body) : undefined;
    const requestId = input.idempotency ? idempotentRequestId(user.userId, input.idempotency.key) : randomUUID();
    const createdAt = deps.now();
    span.setAttribute("ml_inference.request_id", requestId);
    // A chat template adds role markers around each message: counted, so the estimate stays a bound.
    const templateTokens = (input.messages?.length ?? 0) * CHAT_TEMPLATE_TOKENS_PER_MESSAGE * input.params.numReturnSequences;
    const estimatedTokens = estimateTokens(input.prompt, input.params) + templateTokens;
    // A deadline the queue cannot meet is refused before anything is reserved.
    const estimate =
      input.maxQueueSeconds !== undefined ? deps.estimator.checkDeadline(estimatedTokens, input.maxQueueSeconds) : deps.estimator.estimate(estimatedTokens);
    const reservation = await unavailableOnFailure("quota store", () =>
      deps.quota.reserve({ userId: user.userId, requestId, tokens: estimatedTokens, limits: user.limits, now: createdAt }),
    );
    if (!reservation.ok) {
      throw new AppError("quota_exceeded", `quota exceeded: ${reservation.limit} (${reservation.current} of ${reservation.limitValue} used)`, {
        retryAfterSeconds: reservation.retryAfterSeconds,
        details: { limit: reservation.limit, limit_value: reservation.limitValue, current: reservation.current, requested_tokens: estimatedTokens },
      });
    }
    // An idempotent repeat whose reservation already stands: the request is (being) stored by the
    // call that made it. Nothing new was counted, so nothing is given back.
    if (hash && reservation.duplicate) {
      const found = await deps.requests.view(requestId).catch(() => null);
      if (found) return { requestId, createdAt: found.createdAt, estimatedTokens: found.estimatedTokens, existing: await earlier(requestId, hash) };
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
      api: input.api,
      apiOptions: input.apiOptions ?? null,
      messages: input.messages ?? null,
      streamTokens: input.streamTokens,
      idempotencyHash: hash ?? null,
      deadlineAt: input.maxQueueSeconds !== undefined ? new Date(createdAt.getTime() + input.maxQueueSeconds * 1000) : null,
    };
    let inserted: boolean;
    try {
      inserted = await unavailableOnFailure("database", () => deps.insert(request));
    } catch (error) {
      if (!reservation.duplicate) await release();
      throw error;
    }
    if (!inserted) {
      // The key's request is stored already: by a call racing this one (it shares this reservation:
      // keep it), or long ago (this reservation is new and nobody's: give it back).
      const found = await earlier(requestId, hash as string);
      if (!reservation.duplicate && found.status !== "queued" && found.status !== "processing") await release();
      return { requestId, createdAt: found.createdAt, estimatedTokens: found.estimatedTokens, existing: found };
    }
    const message = requestMessageOf(request);
    try {
      await unavailableOnFailure("message broker", () => deps.queue.publish(deps.requestsQueue, encodeMessage(message), withTraceHeaders(span)));
      deps.onPublished();
      deps.marker.add(requestId);
      deps.estimator.admitted(estimatedTokens, (deps.now().getTime() - createdAt.getTime()) / 1000);
    } catch (error) {
      let removed: boolean | undefined;
      try {
        removed = await deps.outbox.deleteUnpublished(requestId);
      } catch (deleteError) {
        // The row stays and the sweeper will publish it (the outbox), its reservation with it, so the
        // request runs and is charged: the client is told it was accepted, not 503 (a retry would
        // run it twice).
        log.error({ err: deleteError, request_id: requestId }, "could not remove an unpublished request; the sweeper will publish it");
        return { requestId, createdAt, estimatedTokens, ...(reservation.counts ? { counts: reservation.counts } : {}) };
      }
      // Nothing to remove: the sweeper published the row meanwhile, so the request is queued after all.
      if (!removed) return { requestId, createdAt, estimatedTokens };
      await release();
      throw error;
    }
    log.info({ request_id: requestId, user_id: user.userId, estimated_tokens: estimatedTokens, api: input.api }, "request admitted");
    return { requestId, createdAt, estimatedTokens, estimate, ...(reservation.counts ? { counts: reservation.counts } : {}) };
  }
}

export type Admit = ReturnType<typeof createAdmission>;

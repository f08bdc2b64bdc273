/**
 * The OpenAI front door on the gateway: `GET /v1/models`, `POST /v1/chat/completions` and
 * `POST /v1/completions`. Each call is admitted like `/api/v1/inference` (quota reserved, stored,
 * published, run by a worker, settled by the collector) and the handler holds the connection:
 * without `stream` it answers when the request is final; with `stream` it relays the request's
 * token stream as OpenAI chunks, usage last, then `[DONE]`. A client that goes away cancels it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { GatewayConfig } from "../../../config.js";
import { AppError, isErrorCode, openAiErrorBody } from "../../../errors.js";
import { followOrRecover } from "../../../domain/follow-or-recover.js";
import type { EventBus, QuotaStore, RequestStore, RequestStreams, RequestView } from "../../../domain/ports.js";
import type { AuthenticatedUser, Authenticator } from "../../../http/authenticator.js";
import type { Logger } from "../../../observability/logger.js";
import type { AdmissionInput, Admitted } from "../admission.js";
import { idempotencyKeyOf } from "../admission.js";
import type { Cancel } from "../cancel.js";
import { isFinal, waitForFinal, WaitAborted } from "../../../domain/wait-for-final.js";
import { rateLimitHeaders, rateLimitHeadersOf } from "../rate-limit-headers.js";
import { registerResponsesRoutes } from "./responses-routes.js";
import { parseChatBody, parseCompletionBody, type ParsedOpenAiBody } from "./bodies.js";
import { startEventStream } from "../../../http/sse.js";
import {
  answerOf,
  chatChunksFor,
  chatCompletionBody,
  completionBody,
  completionChunksFor,
  SSE_DONE,
  sseData,
  type ChunkContext,
} from "./chat-shapes.js";

export interface OpenAiRouteContext {
  config: GatewayConfig;
  log: Logger;
  auth: Authenticator;
  admit: (input: AdmissionInput) => Promise<Admitted>;
  cancel: Cancel;
  ownRequest: (id: string, user: AuthenticatedUser) => Promise<RequestView>;
  quota: QuotaStore;
  requests: RequestStore;
  events: EventBus;
  streams: RequestStreams;
  models: readonly string[];
  now: () => Date;
  recheckMs: number;
  fail: (reply: FastifyReply, error: unknown) => FastifyReply;
}

type Kind = "chat" | "completion";

/** Aborts when the client goes away before its answer is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** A request that did not complete, as the error a client of the OpenAI API expects. */
export function outcomeError(view: RequestView): AppError {
  if (view.status === "cancelled") return new AppError("request_cancelled", "the request was cancelled before it finished");
  const code = view.error?.code;
  return new AppError(isErrorCode(code) ? code : "internal_error", view.error?.message ?? "the request failed");
}

/** The client left a call it was waiting on: nobody will read the answer, so the request stops. */
export async function cancelAbandonedFor(ctx: Pick<OpenAiRouteContext, "cancel" | "ownRequest" | "log">, requestId: string, user: AuthenticatedUser): Promise<void> {
  try {
    await ctx.cancel(await ctx.ownRequest(requestId, user));
    ctx.log.info({ request_id: requestId }, "client went away; request cancelled");
  } catch (error) {
    ctx.log.warn({ err: error, request_id: requestId }, "could not cancel an abandoned request");
  }
}

/** The user's quota as OpenAI's rate-limit headers; a quota store that cannot answer leaves them out. */
export async function limitHeadersFor(ctx: Pick<OpenAiRouteContext, "quota" | "now">, user: AuthenticatedUser): Promise<Record<string, string>> {
  const now = ctx.now();
  try {
    return rateLimitHeaders(user.limits, await ctx.quota.usage(user.userId, now), now);
  } catch {
    return {};
  }
}

/** The headers of an answer sent right at admission: from the reservation's own counts when it has them. */
export async function admissionHeaders(ctx: Pick<OpenAiRouteContext, "quota" | "now">, user: AuthenticatedUser, admitted: Admitted): Promise<Record<string, string>> {
  return admitted.counts ? rateLimitHeadersOf(user.limits, admitted.counts, ctx.now()) : limitHeadersFor(ctx, user);
}

/** Starts an SSE answer on the raw socket; `write` waits while a slow reader's socket is full. */
export function openSse(reply: FastifyReply, headers: Record<string, string>, gone: AbortSignal) {
  const raw = startEventStream(reply, headers);
  // The chunks written in one tick go out in one segment (corked until the next tick).
  let corked = false;
  const write = async (text: string) => {
    if (!corked) {
      corked = true;
      raw.cork();
      process.nextTick(() => {
        corked = false;
        raw.uncork();
      });
    }
    if (!raw.write(text) && !gone.aborted) await new Promise<void>((resolve) => raw.once("drain", resolve).once("close", resolve));
  };
  return { write, end: () => raw.end() };
}

export function registerOpenAiRoutes(app: FastifyInstance, ctx: OpenAiRouteContext): void {
  const limits = {
    maxLength: ctx.config.maxLengthLimit,
    maxPromptChars: ctx.config.maxPromptChars,
    models: ctx.models,
    defaultModel: ctx.config.defaultModel,
  };
  const served = [...new Set([ctx.config.defaultModel])];
  const modelObject = (id: string) => ({ id, object: "model", created: 0, owned_by: "ml-inference" });

  const limitHeaders = (user: AuthenticatedUser) => limitHeadersFor(ctx, user);

  async function authenticated(request: FastifyRequest, reply: FastifyReply): Promise<AuthenticatedUser> {
    const user = await ctx.auth.authenticate(request.headers.authorization);
    reply.headers(await limitHeaders(user));
    return user;
  }

  app.get("/v1/models", async (request, reply) => {
    try {
      await authenticated(request, reply);
      return { object: "list", data: served.map(modelObject) };
    } catch (error) {
      return ctx.fail(reply, error);
    }
  });

  app.get<{ Params: { model: string } }>("/v1/models/:model", async (request, reply) => {
    try {
      await authenticated(request, reply);
      if (!ctx.models.includes(request.params.model)) {
        throw new AppError("model_not_found", `model "${request.params.model.slice(0, 64)}" is not served here`, { details: { field: "model" } });
      }
      return modelObject(request.params.model === "default" ? ctx.config.defaultModel : request.params.model);
    } catch (error) {
      return ctx.fail(reply, error);
    }
  });

  const handler = (kind: Kind) => async (request: FastifyRequest, reply: FastifyReply) => {
    let user: AuthenticatedUser | undefined;
    try {
      user = await ctx.auth.authenticate(request.headers.authorization);
      const key = idempotencyKeyOf(request.headers["idempotency-key"]);
      const body = kind === "chat" ? parseChatBody(request.body, limits) : parseCompletionBody(request.body, limits);
      const route = kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
      const admitted = await ctx.admit({
        user,
        api: kind,
        model: body.model,
        prompt: body.prompt,
        ...(body.messages ? { messages: body.messages } : {}),
        params: body.params,
        streamTokens: body.stream,
        apiOptions: { include_usage: body.includeUsage },
        ...(key ? { idempotency: { key, route, body: request.body } } : {}),
        traceparent: request.headers.traceparent,
        ...(body.maxQueueSeconds !== undefined ? { maxQueueSeconds: body.maxQueueSeconds } : {}),
      });
      const gone = clientGone(reply);
      if (body.stream) return await relayStream(kind, reply, user, body, admitted, gone);
      let view: RequestView;
      try {
        view = admitted.existing && isFinal(admitted.existing) ? admitted.existing : await waitForFinal(ctx, admitted.requestId, { signal: gone });
      } catch (error) {
        if (error instanceof WaitAborted) return await cancelAbandoned(admitted.requestId, user);
        throw error;
      }
      reply.headers(await limitHeaders(user));
      if (view.status !== "completed") throw outcomeError(view);
      const answer = answerOf(view);
      return kind === "chat" ? chatCompletionBody(answer) : completionBody(answer);
    } catch (error) {
      if (user && !reply.hasHeader("x-ratelimit-limit-requests")) reply.headers(await limitHeaders(user));
      return ctx.fail(reply, error);
    }
  };

  const cancelAbandoned = (requestId: string, user: AuthenticatedUser) => cancelAbandonedFor(ctx, requestId, user);

  async function relayStream(kind: Kind, reply: FastifyReply, user: AuthenticatedUser, body: ParsedOpenAiBody, admitted: Admitted, gone: AbortSignal) {
    const sse = openSse(reply, await admissionHeaders(ctx, user, admitted), gone);
    const chunkContext: ChunkContext = {
      requestId: admitted.requestId,
      createdAt: admitted.existing?.createdAt ?? admitted.createdAt,
      model: body.model,
      includeUsage: body.includeUsage,
    };
    const write = sse.write;
    let ended = false;
    try {
      for await (const event of followOrRecover(ctx, admitted.requestId, 0, gone)) {
        const chunks = kind === "chat" ? chatChunksFor(chunkContext, event) : completionChunksFor(chunkContext, event);
        for (const chunk of chunks) await write(sseData(chunk));
        if (event.type === "final") {
          if (event.status === "failed") {
            const code = event.error?.code;
            await write(sseData(openAiErrorBody(new AppError(isErrorCode(code) ? code : "internal_error", event.error?.message ?? "the request failed"))));
          }
          await write(SSE_DONE);
          ended = true;
        }
      }
    } catch (error) {
      ctx.log.warn({ err: error, request_id: admitted.requestId }, "token stream interrupted");
      if (!gone.aborted) {
        await write(sseData(openAiErrorBody(new AppError("service_unavailable", "the token stream was interrupted; the request goes on", { retryAfterSeconds: 1 }))));
      }
    }
    if (!ended && gone.aborted) await cancelAbandoned(admitted.requestId, user);
    sse.end();
  }

  app.post("/v1/chat/completions", handler("chat"));
  app.post("/v1/completions", handler("completion"));
  registerResponsesRoutes(app, ctx, limits);
}

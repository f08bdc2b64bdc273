/**
 * The Responses API: `POST /v1/responses` (background: answered `queued` at once; streamed: the
 * events as tokens come; otherwise held until final), `GET /v1/responses/{id}` (and, with
 * `?stream=true&starting_after=N`, the event stream replayed from the stored events after N, then
 * live), `POST /v1/responses/{id}/cancel`. Event sequence numbers depend only on the request's
 * stream (responses-shapes.ts), so a client that reconnects gets every event exactly once.
 */
import { etaBody } from "../../../domain/queue-estimate.js";
import type { FastifyInstance, FastifyReply } from "fastify";
import { AppError, openAiErrorBody } from "../../../errors.js";
import { followOrRecover } from "../../../domain/follow-or-recover.js";
import type { RequestView } from "../../../domain/ports.js";
import type { AuthenticatedUser } from "../../../http/authenticator.js";
import { idempotencyKeyOf } from "../admission.js";
import { isFinal, waitForFinal, WaitAborted } from "../../../domain/wait-for-final.js";
import { parseResponsesBody, responsesRequest } from "./responses-body.js";
import {
  eventsFor,
  initialStreamState,
  preludeEvents,
  requestIdOfResponse,
  responseObject,
  responseStatus,
  sseEvent,
  type ResponseFacts,
  type ResponseOutcome,
} from "./responses-shapes.js";
import { admissionHeaders, cancelAbandonedFor, clientGone, limitHeadersFor, openSse, type OpenAiRouteContext } from "./routes.js";

interface Limits {
  maxLength: number;
  maxPromptChars: number;
  models: readonly string[];
  defaultModel: string;
}

/** What a response echoes back, kept with the request (its api_options). */
interface ResponseOptions {
  instructions: string | null;
  metadata: Record<string, string> | null;
  max_output_tokens: number | null;
  temperature: number | null;
  top_p: number | null;
  background: boolean;
}

function factsOf(view: Pick<RequestView, "requestId" | "createdAt" | "model" | "apiOptions">): ResponseFacts {
  const o = (view.apiOptions ?? {}) as Partial<ResponseOptions>;
  return {
    requestId: view.requestId,
    createdAt: view.createdAt,
    model: view.model,
    instructions: o.instructions ?? null,
    metadata: o.metadata ?? null,
    maxOutputTokens: o.max_output_tokens ?? null,
    temperature: o.temperature ?? null,
    topP: o.top_p ?? null,
    background: o.background === true,
  };
}

export function responseOf(view: RequestView) {
  return responseObject(factsOf(view), {
    status: responseStatus(view.status, view.finishReason),
    text: view.outputText,
    usage: view.usage,
    error: view.error,
    completedAt: view.completedAt,
  });
}

/** A background response's state when admitted. */
const QUEUED: ResponseOutcome = { status: "queued", text: null, usage: null, error: null };

export function registerResponsesRoutes(app: FastifyInstance, ctx: OpenAiRouteContext, limits: Limits): void {
  /** Relays the request's events after `startingAfter`, from the stored ones on, until the final. */
  async function relay(reply: FastifyReply, user: AuthenticatedUser, facts: ResponseFacts, startingAfter: number, gone: AbortSignal, cancelOnLeave: boolean, headers?: Record<string, string>) {
    const sse = openSse(reply, headers ?? (await limitHeadersFor(ctx, user)), gone);
    const send = async (events: Array<{ sequence_number: number }>) => {
      for (const event of events) if (event.sequence_number > startingAfter) await sse.write(sseEvent(event as never));
    };
    let state = initialStreamState();
    let ended = false;
    try {
      await send(preludeEvents(facts));
      for await (const event of followOrRecover(ctx, facts.requestId, 0, gone)) {
        const next = eventsFor(facts, state, event);
        state = next.state;
        await send(next.events);
        if (event.type === "final") ended = true;
      }
    } catch (error) {
      ctx.log.warn({ err: error, request_id: facts.requestId }, "response stream interrupted");
      if (!gone.aborted) await sse.write(`event: error\ndata: ${JSON.stringify(openAiErrorBody(new AppError("service_unavailable", "the event stream was interrupted; resume with starting_after")))}\n\n`);
    }
    if (!ended && gone.aborted && cancelOnLeave) await cancelAbandonedFor(ctx, facts.requestId, user);
    sse.end();
  }

  async function ownResponse(id: string, user: AuthenticatedUser): Promise<RequestView> {
    const requestId = requestIdOfResponse(id);
    if (!requestId) throw new AppError("request_not_found", `no response ${id.slice(0, 64)}`, { details: { field: "response_id" } });
    const view = await ctx.ownRequest(requestId, user);
    if (view.api !== "response") throw new AppError("request_not_found", `no response ${id.slice(0, 64)}`, { details: { field: "response_id" } });
    return view;
  }

  app.post("/v1/responses", async (request, reply) => {
    let user: AuthenticatedUser | undefined;
    try {
      user = await ctx.auth.authenticate(request.headers.authorization);
      const key = idempotencyKeyOf(request.headers["idempotency-key"]);
      const body = parseResponsesBody(request.body, { maxLength: limits.maxLength });
      const { messages, params } = responsesRequest(body);
      const prompt = messages.map((m) => m.content).join("\n");
      if (prompt.length > limits.maxPromptChars) {
        throw new AppError("prompt_too_long", `input has ${prompt.length} characters; the limit is ${limits.maxPromptChars}`, { details: { field: "input" } });
      }
      const requested = body.model ?? limits.defaultModel;
      if (!limits.models.includes(requested)) {
        throw new AppError("model_not_found", `model "${requested.slice(0, 64)}" is not served here; available: ${limits.models.join(", ")}`, { details: { field: "model" } });
      }
      const background = body.background === true;
      const options: ResponseOptions = {
        instructions: body.instructions ?? null,
        metadata: body.metadata ?? null,
        max_output_tokens: body.max_output_tokens ?? null,
        temperature: body.temperature ?? null,
        top_p: body.top_p ?? null,
        background,
      };
      const admitted = await ctx.admit({
        user,
        api: "response",
        model: requested === "default" ? limits.defaultModel : requested,
        prompt,
        messages,
        params: { maxLength: limits.maxLength, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, numReturnSequences: 1, ...params },
        // Background responses are streamed too, so that GET ?stream=true can follow them.
        streamTokens: body.stream === true || background,
        apiOptions: { ...options },
        ...(key ? { idempotency: { key, route: "/v1/responses", body: request.body } } : {}),
        traceparent: request.headers.traceparent,
        ...(typeof body.max_queue_seconds === "number" ? { maxQueueSeconds: body.max_queue_seconds } : {}),
      });
      const facts = factsOf({ requestId: admitted.requestId, createdAt: admitted.existing?.createdAt ?? admitted.createdAt, model: requested === "default" ? limits.defaultModel : requested, apiOptions: { ...options } });
      if (body.stream) return await relay(reply, user, facts, -1, clientGone(reply), !background, await admissionHeaders(ctx, user, admitted));
      if (background && !admitted.existing) {
        // The reservation's own counts: no second round trip to the quota store on this path.
        reply.headers(await admissionHeaders(ctx, user, admitted));
        return responseObject(facts, QUEUED, etaBody(admitted.estimate ?? null));
      }
      // Only a call that waits listens for its client leaving (an AbortController costs µs per call).
      const gone = clientGone(reply);
      let view: RequestView;
      try {
        view = admitted.existing && (isFinal(admitted.existing) || background) ? admitted.existing : await waitForFinal(ctx, admitted.requestId, { signal: gone });
      } catch (error) {
        if (error instanceof WaitAborted) return await cancelAbandonedFor(ctx, admitted.requestId, user);
        throw error;
      }
      reply.headers(await limitHeadersFor(ctx, user));
      return responseOf(view);
    } catch (error) {
      if (user) reply.headers(await limitHeadersFor(ctx, user));
      return ctx.fail(reply, error);
    }
  });

  app.get<{ Params: { id: string }; Querystring: { stream?: string; starting_after?: string } }>("/v1/responses/:id", async (request, reply) => {
    try {
      const user = await ctx.auth.authenticate(request.headers.authorization);
      const view = await ownResponse(request.params.id, user);
      if (request.query.stream !== "true") {
        reply.headers(await limitHeadersFor(ctx, user));
        // Running is not stored (it is transient); a streamed response with text in its stream is running.
        const running = view.status === "queued" && view.streamTokens && (await ctx.streams.read(view.requestId, 0, 1).catch(() => [])).length > 0;
        return responseOf(running ? { ...view, status: "processing" } : view);
      }
      if (!view.streamTokens) {
        throw new AppError("invalid_parameter", "stream: only a response created with stream or background can be streamed", { details: { field: "stream" } });
      }
      const raw = request.query.starting_after;
      const startingAfter = raw === undefined ? -1 : Number(raw);
      if (!Number.isSafeInteger(startingAfter) || startingAfter < -1) {
        throw new AppError("invalid_parameter", "starting_after: must be a non-negative integer", { details: { field: "starting_after" } });
      }
      return await relay(reply, user, factsOf(view), startingAfter, clientGone(reply), false);
    } catch (error) {
      return ctx.fail(reply, error);
    }
  });

  app.post<{ Params: { id: string } }>("/v1/responses/:id/cancel", async (request, reply) => {
    try {
      const user = await ctx.auth.authenticate(request.headers.authorization);
      const view = await ownResponse(request.params.id, user);
      const after = await ctx.cancel(view);
      reply.headers(await limitHeadersFor(ctx, user));
      return responseOf(after);
    } catch (error) {
      return ctx.fail(reply, error);
    }
  });
}

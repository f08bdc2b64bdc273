/**
 * The user's webhook endpoints on the gateway: `POST /api/v1/webhooks` (the secret is answered once),
 * `GET /api/v1/webhooks` (own endpoints, their status and last error; the event types there are) and
 * `DELETE /api/v1/webhooks/{id}`. Someone else's endpoint is answered exactly like a missing one.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import type { WebhookConfig } from "../../config.js";
import { AppError, isAppError } from "../../errors.js";
import type { WebhookStore } from "../../domain/webhooks.js";
import type { AuthenticatedUser } from "../../http/authenticator.js";
import { sendError } from "../../http/server.js";
import type { Logger } from "../../observability/logger.js";
import { createEndpoint, endpointList, parseCreateWebhookBody } from "./endpoints.js";

export interface WebhookRouteDeps {
  config: WebhookConfig;
  log: Logger;
  auth: { authenticate(authorization: string | undefined): Promise<AuthenticatedUser> };
  store: WebhookStore;
}

const ENDPOINT_ID = /^whe_[0-9a-f]{24}$/;

export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  // Anonymous callers share one user id: an endpoint of theirs would receive everyone's events.
  const owner = async (authorization: string | undefined) => {
    const user = await deps.auth.authenticate(authorization);
    if (user.anonymous) throw new AppError("unauthorized", "webhook endpoints need an API key");
    return user;
  };
  const fail = (reply: FastifyReply, error: unknown) => {
    if (!isAppError(error)) deps.log.error({ err: error }, "webhook route failed");
    return sendError(reply, isAppError(error) ? error : new AppError("internal_error", "internal error"));
  };

  app.post("/api/v1/webhooks", async (request, reply) => {
    try {
      const user = await owner(request.headers.authorization);
      const input = parseCreateWebhookBody(request.body);
      return reply.code(201).send(await createEndpoint(deps.store, deps.config, user.userId, input));
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get("/api/v1/webhooks", async (request, reply) => {
    try {
      const user = await owner(request.headers.authorization);
      return endpointList(await deps.store.listEndpoints(user.userId));
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.delete<{ Params: { id: string } }>("/api/v1/webhooks/:id", async (request, reply) => {
    try {
      const user = await owner(request.headers.authorization);
      const id = request.params.id;
      if (!ENDPOINT_ID.test(id) || !(await deps.store.deleteEndpoint(id, user.userId))) {
        throw new AppError("webhook_not_found", `no webhook endpoint ${id.slice(0, 64)}`, { details: { field: "id" } });
      }
      return { id, object: "webhook_endpoint", deleted: true };
    } catch (error) {
      return fail(reply, error);
    }
  });
}

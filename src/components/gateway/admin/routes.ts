/**
 * The admin routes: users (list, create), keys (create, shown once; revoke), tiers (list) and the
 * live queue (depth and recent throughput), for the console's admin page. Each demands the admin
 * credential (credential.ts) before it reads anything; what they do is the admin CLI's own code
 * (admin-operations.ts), so the two cannot disagree.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { adminOperations, USER_ID, USER_ID_RULE } from "../../../admin-operations.js";
import { AppError, isAppError } from "../../../errors.js";
import type { BacklogStats, MessageQueue, UserStore } from "../../../domain/ports.js";
import { sendError } from "../../../http/server.js";
import type { Logger } from "../../../observability/logger.js";
import { unavailableOnFailure } from "../admission.js";
import { adminGuard } from "./credential.js";
import { createUserBody, keyAnswer, tierAnswer, userAnswer, type QueueAnswer } from "./shapes.js";

export interface AdminRouteDeps {
  adminApiKey: string | undefined;
  log: Logger;
  users: UserStore;
  /** The queue estimate's own reading of the backlog and of what finished lately. */
  backlog: BacklogStats;
  queue: Pick<MessageQueue, "stats">;
  requestsQueue: string;
  now?: () => Date;
}

/** Throughput is counted over this window: long enough to be steady, short enough to be "now". */
export const THROUGHPUT_WINDOW_S = 60;

export function registerAdminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  const now = deps.now ?? (() => new Date());
  const requireAdmin = adminGuard(deps.adminApiKey);
  const ops = adminOperations(deps.users);
  const fail = (reply: FastifyReply, error: unknown) => {
    if (!isAppError(error)) deps.log.error({ err: error }, "admin route failed");
    return sendError(reply, isAppError(error) ? error : new AppError("internal_error", "internal error"));
  };
  const database = <T>(work: () => Promise<T>) => unavailableOnFailure("database", work);

  app.get("/api/v1/admin/users", async (request, reply) => {
    try {
      requireAdmin(request.headers.authorization);
      return { data: (await database(() => ops.listUsers())).map(userAnswer) };
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.post("/api/v1/admin/users", async (request, reply) => {
    try {
      requireAdmin(request.headers.authorization);
      const parsed = createUserBody.safeParse(request.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        if (issue.code === "unrecognized_keys") {
          const field = String(issue.keys[0]).slice(0, 64);
          throw new AppError("unknown_field", `unknown field "${field}"`, { details: { field } });
        }
        const field = issue.path.join(".") || "body";
        throw new AppError("invalid_parameter", field === "user_id" ? USER_ID_RULE : `${field}: ${issue.message}`, { details: { field } });
      }
      const created = await database(() => ops.createUser(parsed.data.user_id, parsed.data.tier));
      deps.log.info({ user_id: created.userId, tier: created.tier }, "admin: user created");
      return reply.code(201).send({ user_id: created.userId, tier: created.tier });
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.post<{ Params: { id: string } }>("/api/v1/admin/users/:id/keys", async (request, reply) => {
    try {
      requireAdmin(request.headers.authorization);
      if (!USER_ID.test(request.params.id)) throw new AppError("invalid_parameter", USER_ID_RULE, { details: { field: "user_id" } });
      const key = await database(() => ops.createKey(request.params.id));
      // The key id only: the key itself must never reach a log.
      deps.log.info({ user_id: key.userId, key_id: key.keyId }, "admin: key created");
      return reply.code(201).header("cache-control", "no-store").send(keyAnswer(key));
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.delete<{ Params: { id: string } }>("/api/v1/admin/keys/:id", async (request, reply) => {
    try {
      requireAdmin(request.headers.authorization);
      const revoked = await database(() => ops.revokeKey(request.params.id));
      deps.log.info({ key_id: revoked.keyId }, "admin: key revoked");
      return { key_id: revoked.keyId, revoked: true };
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get("/api/v1/admin/tiers", async (request, reply) => {
    try {
      requireAdmin(request.headers.authorization);
      return { data: (await database(() => ops.listTiers())).map(tierAnswer) };
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get("/api/v1/admin/queue", async (request, reply) => {
    try {
      requireAdmin(request.headers.authorization);
      const [stats, backlog] = await Promise.all([
        unavailableOnFailure("broker", () => deps.queue.stats(deps.requestsQueue)),
        database(() => deps.backlog.snapshot(THROUGHPUT_WINDOW_S, now())),
      ]);
      const open = backlog.openRequests;
      const finished = backlog.finishedRequests;
      const answer: QueueAnswer = {
        queue: deps.requestsQueue,
        ready: stats.ready,
        unacked: stats.unacked,
        open_requests: open,
        finished_recently: finished,
        window_seconds: THROUGHPUT_WINDOW_S,
        throughput_per_second: Math.round((finished / THROUGHPUT_WINDOW_S) * 1000) / 1000,
      };
      return reply.header("cache-control", "no-store").send(answer);
    } catch (error) {
      return fail(reply, error);
    }
  });
}

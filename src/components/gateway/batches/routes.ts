/**
 * The Batch API on the gateway: `POST/GET /v1/files`, `GET/DELETE /v1/files/{id}`,
 * `GET /v1/files/{id}/content`, `POST/GET /v1/batches`, `GET /v1/batches/{id}` and
 * `POST /v1/batches/{id}/cancel`. A batch is answered `validating` when it is created, as OpenAI's
 * are: the dispatcher (validator.ts, then dispatcher.ts) checks its file whole (lines.ts), where any
 * bad line fails it, naming the line, before anything is reserved, then runs it.
 * Someone else's file or batch is answered exactly like a missing one.
 */
import { parsedBySchema } from "../../../http/schema-body.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { GatewayConfig } from "../../../config.js";
import { AppError, isAppError } from "../../../errors.js";
import { FILE_EXPIRY_MAX_SECONDS, FILE_EXPIRY_MIN_SECONDS, type BatchStore } from "../../../domain/batches.js";
import type { QuotaStore } from "../../../domain/ports.js";
import type { AuthenticatedUser } from "../../../http/authenticator.js";
import { sendError } from "../../../http/server.js";
import type { Logger } from "../../../observability/logger.js";
import { limitHeadersFor } from "../openai/routes.js";
import { isBatchEndpoint } from "./lines.js";
import { boundaryOf, parseMultipart } from "./multipart.js";
import { batchObject, fileObject, newBatchId, newFileId } from "./shapes.js";

export interface BatchRouteDeps {
  config: GatewayConfig;
  log: Logger;
  auth: { authenticate(authorization: string | undefined): Promise<AuthenticatedUser> };
  store: BatchStore;
  /** For the rate-limit headers every `/v1` answer carries; without it they are left out. */
  quota?: QuotaStore;
  /** Told when a batch was created, to validate it now rather than at the dispatcher's next interval. */
  batchCreated?: () => void;
  now?: () => Date;
}

const parsed = parsedBySchema;

/** Room for the multipart framing and the purpose field around the file itself. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/** OpenAI's expiration policy: `seconds` after the file's creation, 1 hour to 30 days. */
const expiresAfter = (seconds: z.ZodType<number>) =>
  z.object({ anchor: z.literal("created_at", { error: 'must be "created_at"' }), seconds }).strict();
const expirySeconds = z.number().int().min(FILE_EXPIRY_MIN_SECONDS).max(FILE_EXPIRY_MAX_SECONDS);

/** POST /v1/batches (exported for the API reference). */
export const createBatchBody = z
  .object({
    input_file_id: z.string().min(1).max(128),
    endpoint: z.string(),
    completion_window: z.literal("24h", { error: 'must be "24h"' }),
    metadata: z.record(z.string().max(64), z.string().max(512)).refine((m) => Object.keys(m).length <= 16, "at most 16 keys").nullish(),
    output_expires_after: expiresAfter(expirySeconds).optional(),
  })
  .strict();

/** `expires_after[anchor]` and `expires_after[seconds]` of POST /v1/files (form fields: strings). */
const fileExpiry = z.object({ expires_after: expiresAfter(z.coerce.number().pipe(expirySeconds)).optional() });

/** The form's `expires_after[…]` fields as the object they encode; undefined when there are none. */
export function expiresAfterOf(fields: Record<string, string>): { anchor: "created_at"; seconds: number } | undefined {
  const entries = Object.entries(fields).flatMap(([name, value]) => {
    const key = /^expires_after\[([^\]]*)\]$/.exec(name)?.[1];
    return key === undefined ? [] : [[key, value] as const];
  });
  if (entries.length === 0 && fields.expires_after === undefined) return undefined;
  return parsed(fileExpiry, { expires_after: entries.length > 0 ? Object.fromEntries(entries) : fields.expires_after }).expires_after;
}

const pageQuery = z.object({
  after: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  purpose: z.string().max(64).optional(),
  order: z.enum(["asc", "desc"]).optional(),
});


/** OpenAI's cursor page: `has_more` is learnt by asking for one more than `limit`. */
function page<T extends { id: string }>(items: T[], limit: number) {
  const data = items.slice(0, limit);
  return { object: "list", data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: items.length > limit };
}

export function registerBatchRoutes(app: FastifyInstance, deps: BatchRouteDeps): void {
  const now = deps.now ?? (() => new Date());
  const settings = deps.config.batches;
  const fail = (reply: FastifyReply, error: unknown) => {
    if (!isAppError(error)) deps.log.error({ err: error }, "batch route failed");
    return sendError(reply, isAppError(error) ? error : new AppError("internal_error", "internal error"));
  };
  const quota = deps.quota;
  const user = async (request: FastifyRequest, reply: FastifyReply) => {
    const u = await deps.auth.authenticate(request.headers.authorization);
    if (quota) reply.headers(await limitHeadersFor({ quota, now }, u));
    return u;
  };
  const ownFile = async (id: string, u: AuthenticatedUser, field = "file_id") => {
    const file = await deps.store.getFile(id, u.userId, now());
    if (!file) throw new AppError("file_not_found", `no file ${id.slice(0, 128)}`, { details: { field } });
    return file;
  };
  const ownBatch = async (id: string, u: AuthenticatedUser) => {
    const batch = await deps.store.getBatch(id, u.userId);
    if (!batch) throw new AppError("batch_not_found", `no batch ${id.slice(0, 128)}`, { details: { field: "batch_id" } });
    return batch;
  };

  // Its own scope: multipart bodies are read (as bytes, up to the file limit) on this route only.
  void app.register(async (scope) => {
    scope.addContentTypeParser("multipart/form-data", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
    scope.post("/v1/files", { bodyLimit: settings.fileMaxBytes + MULTIPART_OVERHEAD_BYTES }, async (request, reply) => {
      try {
        const u = await user(request, reply);
        if (!Buffer.isBuffer(request.body)) throw new AppError("unsupported_media_type", "send the file as multipart/form-data");
        const form = parseMultipart(request.body, boundaryOf(request.headers["content-type"]));
        if (form.fields.purpose !== "batch") {
          throw new AppError("invalid_parameter", 'purpose: must be "batch" (the only purpose served here)', { details: { field: "purpose" } });
        }
        if (!form.file) throw new AppError("invalid_parameter", "file: a file part is required", { details: { field: "file" } });
        if (form.file.content.length > settings.fileMaxBytes) {
          throw new AppError("payload_too_large", `the file has ${form.file.content.length} bytes; the limit is ${settings.fileMaxBytes}`, { details: { field: "file" } });
        }
        // Without expires_after, an input file expires after BATCH_INPUT_FILE_TTL_S, as OpenAI's do (null: never).
        const ttlSeconds = expiresAfterOf(form.fields)?.seconds ?? settings.inputFileTtlSeconds;
        const createdAt = now();
        const expiresAt = ttlSeconds === null ? null : new Date(createdAt.getTime() + ttlSeconds * 1000);
        const file = { fileId: newFileId(), userId: u.userId, purpose: "batch", filename: form.file.filename, content: form.file.content, createdAt, expiresAt };
        await deps.store.insertFile(file);
        return fileObject({ ...file, bytes: file.content.length });
      } catch (error) {
        return fail(reply, error);
      }
    });
  });

  app.get("/v1/files", async (request, reply) => {
    try {
      const u = await user(request, reply);
      const q = parsed(pageQuery, request.query);
      const files = await deps.store.listFiles(u.userId, { ...(q.purpose ? { purpose: q.purpose } : {}), ...(q.after ? { after: q.after } : {}), limit: q.limit + 1, now: now() });
      return page(files.map(fileObject), q.limit);
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get<{ Params: { id: string } }>("/v1/files/:id", async (request, reply) => {
    try {
      return fileObject(await ownFile(request.params.id, await user(request, reply)));
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get<{ Params: { id: string } }>("/v1/files/:id/content", async (request, reply) => {
    try {
      const content = await deps.store.fileContent(request.params.id, (await user(request, reply)).userId, now());
      if (!content) throw new AppError("file_not_found", `no file ${request.params.id.slice(0, 128)}`, { details: { field: "file_id" } });
      return reply.type("application/jsonl").send(content);
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.delete<{ Params: { id: string } }>("/v1/files/:id", async (request, reply) => {
    try {
      const u = await user(request, reply);
      if (!(await deps.store.deleteFile(request.params.id, u.userId, now()))) {
        throw new AppError("file_not_found", `no file ${request.params.id.slice(0, 128)}`, { details: { field: "file_id" } });
      }
      return { id: request.params.id, object: "file", deleted: true };
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.post("/v1/batches", async (request, reply) => {
    try {
      const u = await user(request, reply);
      const body = parsed(createBatchBody, request.body);
      if (!isBatchEndpoint(body.endpoint)) {
        throw new AppError("invalid_parameter", "endpoint: must be /v1/chat/completions, /v1/completions or /v1/responses", { details: { field: "endpoint" } });
      }
      const file = await ownFile(body.input_file_id, u, "input_file_id");
      if (file.purpose !== "batch") throw new AppError("invalid_parameter", 'input_file_id: the file\'s purpose is not "batch"', { details: { field: "input_file_id" } });
      // Its lines are checked by the dispatcher (validator.ts): the batch is answered validating at once.
      const createdAt = now();
      const batchId = newBatchId();
      await deps.store.insertBatch({
        batchId,
        userId: u.userId,
        endpoint: body.endpoint,
        inputFileId: file.fileId,
        completionWindow: body.completion_window,
        metadata: body.metadata ?? null,
        createdAt,
        expiresAt: new Date(createdAt.getTime() + settings.completionWindowMs),
        outputExpiresAfterSeconds: body.output_expires_after?.seconds ?? settings.outputFileTtlSeconds,
      });
      deps.log.info({ batch_id: batchId, user_id: u.userId, input_file_id: file.fileId }, "batch created");
      // Read before the dispatcher is woken: the answer is the batch as created, validating.
      const created = batchObject(await ownBatch(batchId, u));
      deps.batchCreated?.();
      return created;
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get("/v1/batches", async (request, reply) => {
    try {
      const u = await user(request, reply);
      const q = parsed(pageQuery, request.query);
      const batches = await deps.store.listBatches(u.userId, { ...(q.after ? { after: q.after } : {}), limit: q.limit + 1 });
      return page(batches.map(batchObject), q.limit);
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get<{ Params: { id: string } }>("/v1/batches/:id", async (request, reply) => {
    try {
      return batchObject(await ownBatch(request.params.id, await user(request, reply)));
    } catch (error) {
      return fail(reply, error);
    }
  });

  // A batch that is not running any more (finished, cancelled already) is answered as it is.
  app.post<{ Params: { id: string } }>("/v1/batches/:id/cancel", async (request, reply) => {
    try {
      const u = await user(request, reply);
      const batch = await ownBatch(request.params.id, u);
      if (await deps.store.cancelBatch(batch.batchId, u.userId, now())) deps.log.info({ batch_id: batch.batchId }, "batch cancelling");
      return batchObject(await ownBatch(batch.batchId, u));
    } catch (error) {
      return fail(reply, error);
    }
  });
}

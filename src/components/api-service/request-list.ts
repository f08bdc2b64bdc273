/**
 * GET /api/v1/requests?status=&limit=&cursor=: the caller's own requests, newest first, one page at a
 * time. The cursor is opaque to clients: it names the last request of the page (its created_at and
 * id), and the next page holds the requests strictly older than it (a keyset, so requests that arrive
 * while a client pages neither repeat nor shift a page). Items are the status body without `result`
 * (a page stays small; the detail is GET /api/v1/status/{id}).
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { AppError } from "../../errors.js";
import type { RequestPage, RequestStatus, RequestStore, RequestView } from "../../domain/ports.js";
import type { Authenticator } from "../../http/authenticator.js";

export const LIST_LIMIT_DEFAULT = 20;
export const LIST_LIMIT_MAX = 100;
const STATUSES: readonly RequestStatus[] = ["queued", "processing", "completed", "failed", "cancelled"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface RequestListDeps {
  auth: Pick<Authenticator, "authenticate">;
  requests: Pick<RequestStore, "listByUser">;
  statusBody: (view: RequestView) => Record<string, unknown>;
  /** Answers a failure in the service's error shape (a backing service down is a 503). */
  fail: (reply: FastifyReply, error: unknown) => unknown;
}

type Query = { status?: unknown; limit?: unknown; cursor?: unknown };

const invalid = (field: string, message: string) => new AppError("invalid_parameter", `${field} ${message}`, { details: { field } });

/** A cursor is base64url of "<created_at in ms>.<request id>": nothing a client should build itself. */
export function encodeCursor(view: Pick<RequestView, "createdAt" | "requestId">): string {
  return Buffer.from(`${view.createdAt.getTime()}.${view.requestId.toLowerCase()}`).toString("base64url");
}

export function decodeCursor(cursor: string): RequestPage["after"] {
  const text = /^[A-Za-z0-9_-]{1,200}$/.test(cursor) ? Buffer.from(cursor, "base64url").toString("utf8") : "";
  const match = /^(\d{1,15})\.(.+)$/.exec(text);
  if (!match || !UUID.test(match[2] as string)) throw invalid("cursor", "is not a cursor this API handed out (use next_cursor as it came)");
  return { createdAt: new Date(Number(match[1])), requestId: match[2] as string };
}

/** The query string as a page, or a 400 naming the first field that is wrong. */
export function parseListQuery(query: Query): RequestPage {
  const one = (name: keyof Query): string | undefined => {
    const value = query[name];
    if (value === undefined || value === "") return undefined;
    if (typeof value !== "string") throw invalid(name, "must be given once");
    return value;
  };
  const page: RequestPage = { limit: LIST_LIMIT_DEFAULT };
  const status = one("status");
  if (status !== undefined) {
    if (!(STATUSES as readonly string[]).includes(status)) throw invalid("status", `must be one of ${STATUSES.join(", ")}`);
    page.status = status as RequestStatus;
  }
  const limit = one("limit");
  if (limit !== undefined) {
    const n = /^\d{1,4}$/.test(limit) ? Number(limit) : NaN;
    if (!(n >= 1 && n <= LIST_LIMIT_MAX)) throw invalid("limit", `must be an integer in [1, ${LIST_LIMIT_MAX}]`);
    page.limit = n;
  }
  const cursor = one("cursor");
  if (cursor !== undefined) page.after = decodeCursor(cursor);
  return page;
}

export function registerRequestList(app: FastifyInstance, deps: RequestListDeps): void {
  app.get<{ Querystring: Query }>("/api/v1/requests", async (request, reply) => {
    try {
      const user = await deps.auth.authenticate(request.headers.authorization);
      const page = parseListQuery(request.query ?? {});
      // One row more than the page says whether another page follows, without a count query.
      const rows = await deps.requests.listByUser(user.userId, { ...page, limit: page.limit + 1 });
      const shown = rows.slice(0, page.limit);
      const last = shown[shown.length - 1];
      return {
        object: "list",
        data: shown.map((view) => {
          const { result: _result, ...item } = deps.statusBody(view);
          return { ...item, api: view.api };
        }),
        has_more: rows.length > page.limit,
        next_cursor: rows.length > page.limit && last ? encodeCursor(last) : null,
      };
    } catch (error) {
      return deps.fail(reply, error);
    }
  });
}

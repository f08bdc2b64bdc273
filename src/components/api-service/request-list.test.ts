// GET /api/v1/requests over a fake store: the query's checks, the page's shape, and the cursor as a
// keyset the store is handed back. (The store's own query: test/contract/request-store.test.ts; the
// route on the real platform: test/browser/console.test.ts.)
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import Fastify from "fastify";
import { AppError } from "../../errors.js";
import { sendError } from "../../http/server.js";
import type { RequestPage, RequestView } from "../../domain/ports.js";
import { decodeCursor, encodeCursor, parseListQuery, registerRequestList } from "./request-list.js";

function view(i: number): RequestView {
  const id = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
  return {
    requestId: id, userId: "u1", model: "m", estimatedTokens: 5, window: { day: "2026-12-01", month: "2026-12" },
    createdAt: new Date(Date.UTC(2026, 11, 1, 0, 0, i)), status: "completed", published: true, startedAt: null, completedAt: null,
    outputText: "secret output", outputs: null, usage: null, error: null, finishReason: null, api: "inference", apiOptions: null,
    streamTokens: false, idempotencyHash: null,
  };
}

async function app() {
  const pages: Array<{ userId: string; page: RequestPage }> = [];
  const rows = [5, 4, 3].map(view);
  const server = Fastify();
  registerRequestList(server, {
    auth: {
      authenticate: async (header) => {
        if (header !== "Bearer k") throw new AppError("unauthorized", "missing API key");
        return { userId: "u1", anonymous: false, limits: { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null } };
      },
    },
    requests: { listByUser: async (userId, page) => (pages.push({ userId, page }), rows.slice(0, page.limit)) },
    statusBody: (v) => ({ request_id: v.requestId, status: v.status, result: { output_text: v.outputText } }),
    fail: (reply, error) => sendError(reply, error as AppError),
  });
  const get = async (query: string, authorization = "Bearer k") => {
    const answer = await server.inject({ url: `/api/v1/requests${query}`, headers: { authorization } });
    return { status: answer.statusCode, body: answer.json() };
  };
  return { get, pages };
}

describe("GET /api/v1/requests", () => {
  it("answers a page of the caller's requests, without outputs, and a cursor when more follow", async () => {
    const { get, pages } = await app();
    const answer = await get("?limit=2&status=completed");
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.data.map((r: { request_id: string }) => r.request_id), [view(5).requestId, view(4).requestId]);
    assert.equal(answer.body.data[0].result, undefined);
    assert.equal(answer.body.data[0].api, "inference");
    assert.equal(answer.body.has_more, true);
    // One more row than asked for tells whether another page follows.
    assert.deepEqual(pages[0], { userId: "u1", page: { limit: 3, status: "completed" } });
    await get(`?limit=2&cursor=${answer.body.next_cursor}`);
    assert.deepEqual(pages[1]?.page.after, { createdAt: view(4).createdAt, requestId: view(4).requestId });
    const last = await get("?limit=3");
    assert.equal(last.body.has_more, false);
    assert.equal(last.body.next_cursor, null);
  });

  it("defaults to 20 newest of any status; a bad value is a 400 naming its field; no key is a 401", async () => {
    assert.deepEqual(parseListQuery({}), { limit: 20 });
    assert.deepEqual(parseListQuery({ status: "", limit: "", cursor: "" }), { limit: 20 });
    assert.equal(parseListQuery({ limit: "100" }).limit, 100);
    const { get } = await app();
    for (const [query, field] of [
      ["?status=running", "status"],
      ["?limit=0", "limit"],
      ["?limit=101", "limit"],
      ["?limit=-1", "limit"],
      ["?limit=1e1", "limit"],
      ["?limit=1&limit=2", "limit"],
      ["?cursor=%%%", "cursor"],
      [`?cursor=${Buffer.from("1.not-a-uuid").toString("base64url")}`, "cursor"],
    ] as const) {
      const answer = await get(query);
      assert.equal(answer.status, 400, query);
      assert.equal(answer.body.error.code, "invalid_parameter", query);
      assert.equal(answer.body.error.details.field, field, query);
    }
    assert.equal((await get("", "Bearer nope")).status, 401);
  });

  it("a cursor round-trips the keyset, in lower case", () => {
    const v = view(7);
    const upper = { createdAt: v.createdAt, requestId: v.requestId.toUpperCase() };
    assert.deepEqual(decodeCursor(encodeCursor(upper)), { createdAt: v.createdAt, requestId: v.requestId });
  });
});

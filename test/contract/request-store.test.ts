import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { SqlUserStore } from "../../src/adapters/postgres/user-store.js";
import { migrate } from "../../src/adapters/postgres/migrate.js";
import type { NewRequest } from "../../src/domain/ports.js";
import { requireServices } from "../support/services.js";
import { freshPglite, freshPostgres, type TestDatabase } from "../support/databases.js";

const skipPostgres = await requireServices("postgres");

function newRequest(overrides: Partial<NewRequest> = {}): NewRequest {
  return {
    requestId: randomUUID(),
    userId: "alice",
    model: "m",
    prompt: "hello",
    params: { max_length: 10, temperature: 0, top_p: 0.9, top_k: 50, repetition_penalty: 1.2, num_return_sequences: 1 },
    estimatedTokens: 17,
    window: { day: "2026-11-25", month: "2026-11" },
    createdAt: new Date("2026-11-25T10:00:00Z"),
    ...overrides,
  };
}

const backends: Array<[string, () => Promise<TestDatabase>, string | undefined]> = [
  ["postgres", freshPostgres, skipPostgres],
  ["pglite", freshPglite, undefined],
];

for (const [name, open, skip] of backends) {
  describe(`request and user stores on ${name}`, { skip }, () => {
    let database: TestDatabase;
    let store: SqlRequestStore;
    let users: SqlUserStore;
    before(async () => {
      database = await open();
      store = new SqlRequestStore(database.db);
      users = new SqlUserStore(database.db);
    });
    after(async () => database?.drop());

    it("migrating again changes nothing", async () => {
      const again = await migrate(database.db);
      assert.deepEqual(again.applied, []);
      assert.ok(again.current >= 1);
    });

    it("stores a request and reads it back", async () => {
      const request = newRequest();
      await store.insert(request);
      const stored = await store.get(request.requestId);
      assert.ok(stored);
      assert.equal(stored.status, "queued");
      assert.equal(stored.published, false);
      assert.deepEqual(stored.params, request.params);
      assert.deepEqual(stored.window, request.window);
      assert.equal(stored.createdAt.toISOString(), request.createdAt.toISOString());
      const view = await store.view(request.requestId);
      assert.ok(view && !("prompt" in view) && !("params" in view), "a view leaves out prompt and parameters");
      assert.deepEqual(view, (({ prompt: _p, params: _q, ...rest }) => rest)(stored));
    });

    it("stores many requests in one statement", async () => {
      const batch = [newRequest(), newRequest({ prompt: "zwei ü 😀", userId: "bob" }), newRequest()];
      await store.insertMany(batch);
      for (const request of batch) {
        const stored = await store.get(request.requestId);
        assert.equal(stored?.prompt, request.prompt);
        assert.equal(stored?.userId, request.userId);
        assert.deepEqual(stored?.params, request.params);
        assert.deepEqual(stored?.window, request.window);
      }
      await assert.rejects(store.insertMany([newRequest(), batch[0]!]), "a duplicate id fails the whole statement");
      const views = await store.viewMany([batch[0]!.requestId, batch[2]!.requestId, "00000000-0000-4000-8000-000000000000"]);
      assert.deepEqual(views.map((v) => v.requestId).sort(), [batch[0]!.requestId, batch[2]!.requestId].sort());
    });

    it("finishes once: a duplicate outcome changes nothing, the ledger has one row", async () => {
      const request = newRequest();
      await store.insert(request);
      const usage = { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 };
      const first = await store.finish({
        requestId: request.requestId, status: "completed", at: new Date(), outputText: "out", outputs: null, usage, error: null, attempt: 1,
      });
      assert.equal(first.changed, true);
      const second = await store.finish({
        requestId: request.requestId, status: "failed", at: new Date(), outputText: null, outputs: null, usage: null,
        error: { code: "x", message: "late duplicate" }, attempt: 2,
      });
      assert.equal(second.changed, false);
      const stored = await store.get(request.requestId);
      assert.equal(stored?.status, "completed");
      assert.equal(stored?.outputText, "out");
      assert.deepEqual(stored?.usage, usage);
      assert.equal(stored?.error, null);
      const ledger = await database.db.query<{ n: number; t: number }>(
        "SELECT COUNT(*)::int AS n, SUM(total_tokens)::int AS t FROM usage_ledger WHERE request_id = $1",
        [request.requestId],
      );
      assert.deepEqual(ledger.rows[0], { n: 1, t: 10 });
    });

    it("finishes many in one statement: the start time with the final row, each id once, duplicates unchanged", async () => {
      const [a, b, c, done] = [newRequest(), newRequest(), newRequest(), newRequest()];
      await store.insertMany([a!, b!, c!, done!]);
      const failed = (id: string, code: string) => ({
        requestId: id, status: "failed" as const, at: new Date(), outputText: null, outputs: null, usage: null, error: { code, message: code }, attempt: 1,
      });
      assert.equal((await store.finish(failed(done!.requestId, "first"))).changed, true);
      const startedAt = new Date("2026-11-25T10:00:05Z");
      const at = new Date("2026-11-25T10:00:06Z");
      const usage = { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 };
      const completed = (id: string, text: string) => ({
        requestId: id, status: "completed" as const, at, outputText: text, outputs: [text, "other"], usage, error: null, attempt: 2, startedAt,
      });
      const unknown = "00000000-0000-4000-8000-000000000000";
      const { changed } = await store.finishMany([
        completed(a!.requestId, "a"),
        completed(a!.requestId.toUpperCase(), "a again"),
        failed(b!.requestId, "b"),
        completed(c!.requestId, "c"),
        failed(done!.requestId, "late"),
        failed(unknown, "nobody"),
      ]);
      assert.deepEqual([...changed].sort(), [a!.requestId, b!.requestId, c!.requestId].sort(), "only the open requests change, each once");
      const storedA = await store.get(a!.requestId);
      assert.equal(storedA?.status, "completed");
      assert.equal(storedA?.outputText, "a", "the first outcome of an id is the one stored");
      assert.deepEqual(storedA?.outputs, ["a", "other"]);
      assert.deepEqual(storedA?.usage, usage);
      assert.deepEqual(storedA?.startedAt, startedAt, "the start time travels with the final row");
      assert.deepEqual(storedA?.completedAt, at);
      assert.equal((await store.get(b!.requestId))?.error?.code, "b");
      assert.equal((await store.get(done!.requestId))?.error?.code, "first", "a finished request stays finished");
      const ledger = await database.db.query<{ request_id: string; total_tokens: number }>(
        "SELECT request_id, total_tokens FROM usage_ledger WHERE request_id = ANY($1::uuid[]) ORDER BY request_id",
        [[a!.requestId, b!.requestId, c!.requestId, done!.requestId]],
      );
      assert.deepEqual(ledger.rows.map((r) => [r.request_id, Number(r.total_tokens)]), [a!.requestId, c!.requestId].sort().map((id) => [id, 5]), "one ledger row per completed request");
      const again = await store.finishMany([completed(a!.requestId, "x"), completed(c!.requestId, "y")]);
      assert.equal(again.changed.size, 0, "a second delivery of the batch changes nothing");
      assert.equal((await store.finishMany([])).changed.size, 0);
    });

    it("a batch that cannot be stored stores none of its outcomes", async () => {
      const [good, bad] = [newRequest(), newRequest()];
      await store.insertMany([good!, bad!]);
      await assert.rejects(
        store.finishMany([
          { requestId: good!.requestId, status: "completed", at: new Date(), outputText: "x", outputs: null, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, error: null, attempt: 1 },
          // Fails the status CHECK constraint.
          { requestId: bad!.requestId, status: "bogus" as "failed", at: new Date(), outputText: null, outputs: null, usage: null, error: { code: "x", message: "y" }, attempt: 1 },
        ]),
      );
      assert.equal((await store.get(good!.requestId))?.status, "queued");
      const ledger = await database.db.query("SELECT 1 FROM usage_ledger WHERE request_id = $1", [good!.requestId]);
      assert.equal(ledger.rows.length, 0);
    });

    it("a failed request is stored as failed, with no result and no ledger row", async () => {
      const request = newRequest();
      await store.insert(request);
      await store.finish({
        requestId: request.requestId, status: "failed", at: new Date(), outputText: null, outputs: null, usage: null,
        error: { code: "prompt_too_long", message: "too long" }, attempt: 1,
      });
      const stored = await store.get(request.requestId);
      assert.equal(stored?.status, "failed");
      assert.equal(stored?.outputText, null);
      assert.deepEqual(stored?.error, { code: "prompt_too_long", message: "too long" });
      const ledger = await database.db.query("SELECT 1 FROM usage_ledger WHERE request_id = $1", [request.requestId]);
      assert.equal(ledger.rows.length, 0);
    });

    it("republishes only old unpublished requests, once", async () => {
      const old = newRequest({ createdAt: new Date(Date.now() - 60_000) });
      const fresh = newRequest({ createdAt: new Date() });
      const published = newRequest({ createdAt: new Date(Date.now() - 60_000) });
      for (const r of [old, fresh, published]) await store.insert(r);
      await store.markPublished([published.requestId]);
      const seen: string[] = [];
      const count = await store.republishUnpublished(new Date(Date.now() - 30_000), 100, async (r) => {
        seen.push(r.requestId);
      });
      assert.ok(seen.includes(old.requestId));
      assert.ok(!seen.includes(fresh.requestId));
      assert.ok(!seen.includes(published.requestId));
      assert.equal(count, seen.length);
      const again: string[] = [];
      await store.republishUnpublished(new Date(Date.now() - 30_000), 100, async (r) => {
        again.push(r.requestId);
      });
      assert.ok(!again.includes(old.requestId));
    });

    it("after a restart with an in-process queue, open requests are marked for publishing again", async () => {
      const open = newRequest({ createdAt: new Date(Date.now() - 60_000) });
      const done = newRequest({ createdAt: new Date(Date.now() - 60_000) });
      await store.insertMany([open, done]);
      await store.markPublished([open.requestId, done.requestId]);
      await store.finish({
        requestId: done.requestId, status: "failed", at: new Date(), outputText: null, outputs: null, usage: null,
        error: { code: "x", message: "y" }, attempt: 1,
      });
      assert.ok((await store.unpublishOpen()) >= 1);
      const seen: string[] = [];
      await store.republishUnpublished(new Date(Date.now() - 30_000), 1000, async (r) => {
        seen.push(r.requestId);
      });
      assert.ok(seen.includes(open.requestId), "the open request is published again");
      assert.ok(!seen.includes(done.requestId), "a finished request is not");
      assert.ok((await store.countOpen()) >= 1);
    });

    it("a failing publish during republish leaves the row unpublished", async () => {
      const request = newRequest({ createdAt: new Date(Date.now() - 120_000) });
      await store.insert(request);
      await assert.rejects(
        store.republishUnpublished(new Date(Date.now() - 30_000), 100, async () => {
          throw new Error("broker down");
        }),
      );
      assert.equal((await store.get(request.requestId))?.published, false);
    });

    it("expires stale open requests as failed with code timeout", async () => {
      const stale = newRequest({ createdAt: new Date(Date.now() - 3_600_000) });
      await store.insert(stale);
      const released: string[] = [];
      const expired = await store.expireStale(new Date(Date.now() - 1_800_000), 100, new Date(), async (r) => {
        released.push(r.requestId);
      });
      assert.ok(released.includes(stale.requestId), "its reservation is released in the same step");
      assert.ok(expired.some((e) => e.requestId === stale.requestId));
      const stored = await store.get(stale.requestId);
      assert.equal(stored?.status, "failed");
      assert.equal(stored?.error?.code, "timeout");
    });

    it("a release that fails leaves a stale request open, to be expired by a later sweep", async () => {
      const stale = newRequest({ createdAt: new Date(Date.now() - 3_600_000) });
      await store.insert(stale);
      await assert.rejects(
        store.expireStale(new Date(Date.now() - 1_800_000), 100, new Date(), async () => {
          throw new Error("redis down");
        }),
      );
      assert.equal((await store.get(stale.requestId))?.status, "queued");
    });

    it("deleteUnpublished removes a request that never reached the broker", async () => {
      const request = newRequest();
      await store.insert(request);
      assert.equal(await store.deleteUnpublished(request.requestId), true);
      assert.equal(await store.get(request.requestId), null);
      assert.equal(await store.deleteUnpublished(request.requestId), false);
    });

    it("users, keys and tiers", async () => {
      await users.upsertTier({ name: "gold", limits: { dailyRequests: 5, dailyTokens: null, monthlyRequests: 50, monthlyTokens: 1000 } });
      await users.createUser("bob", "gold");
      await users.addApiKey("k1", "bob", "hash-1");
      const found = await users.findByKeyHash("hash-1");
      assert.equal(found?.userId, "bob");
      assert.deepEqual(found?.tier, { name: "gold", limits: { dailyRequests: 5, dailyTokens: null, monthlyRequests: 50, monthlyTokens: 1000 } });
      assert.equal(await users.revokeApiKey("k1"), true);
      assert.equal(await users.findByKeyHash("hash-1"), null);
      assert.equal(await users.setTier("bob", "free"), true);
      assert.equal((await users.findUser("bob"))?.tier.limits.dailyRequests, 100);
      assert.ok((await users.listTiers()).some((t) => t.name === "free"));
      assert.ok((await users.listUsers()).some((u) => u.userId === "bob"));
    });
  });
}

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { SqlOutbox } from "../../src/adapters/postgres/outbox.js";
import { SqlStaleRequests } from "../../src/adapters/postgres/stale-requests.js";
import { SqlUserStore } from "../../src/adapters/postgres/user-store.js";
import { migrate } from "../../src/adapters/postgres/migrate.js";
import type { Lease, NewRequest } from "../../src/domain/ports.js";
import { requireServices } from "../support/services.js";
import { freshPglite, freshPostgres, type TestDatabase } from "../support/databases.js";
import { withinSeconds } from "../support/gate.js";

const skipPostgres = await requireServices("postgres");

function newRequest(overrides: Partial<NewRequest> = {}): NewRequest {
  return {
    requestId: randomUUID(),
    userId: "alice",
    model: "m",
    prompt: "hello",
    params: { maxLength: 10, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 },
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
  describe(`request store, outbox, expiry and user stores on ${name}`, { skip }, () => {
    let database: TestDatabase;
    let store: SqlRequestStore;
    let outbox: SqlOutbox;
    let expiry: SqlStaleRequests;
    let users: SqlUserStore;
    before(async () => {
      database = await open();
      store = new SqlRequestStore(database.db);
      outbox = new SqlOutbox(database.db);
      expiry = new SqlStaleRequests(database.db);
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
      assert.deepEqual(view, (({ prompt: _p, params: _q, messages: _m, deadlineAt: _d, ...rest }) => rest)(stored));
      assert.equal(stored.deadlineAt, null, "no deadline unless max_queue_seconds was sent");
      const due = newRequest({ deadlineAt: new Date("2026-11-25T10:00:30Z") });
      await store.insert(due);
      assert.deepEqual((await store.get(due.requestId))?.deadlineAt, due.deadlineAt, "the deadline is stored with the request, for the sweeper's republish");
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
      // An id stored already is skipped, not an error (an Idempotency-Key names its request by id).
      const fresh = newRequest();
      const again = await store.insertMany([fresh, { ...batch[0]!, prompt: "a second body" }]);
      assert.deepEqual([...again.inserted], [fresh.requestId]);
      assert.equal((await store.get(batch[0]!.requestId))?.prompt, batch[0]!.prompt, "the first stored row stays");
      await assert.rejects(store.insert(batch[1]!), /already stored/);
      const views = await store.viewMany([batch[0]!.requestId, batch[2]!.requestId, "00000000-0000-4000-8000-000000000000"]);
      assert.deepEqual(views.map((v) => v.requestId).sort(), [batch[0]!.requestId, batch[2]!.requestId].sort());
    });

    it("keeps what the OpenAI routes need: api, options, chat messages, streaming, body hash", async () => {
      const request = newRequest({
        api: "chat",
        apiOptions: { include_usage: true },
        messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
        streamTokens: true,
        idempotencyHash: "h1",
      });
      await store.insert(request);
      const stored = await store.get(request.requestId);
      assert.equal(stored?.api, "chat");
      assert.deepEqual(stored?.apiOptions, { include_usage: true });
      assert.deepEqual(stored?.messages, request.messages);
      assert.equal(stored?.streamTokens, true);
      assert.equal(stored?.idempotencyHash, "h1");
      const plain = newRequest();
      await store.insert(plain);
      const view = await store.view(plain.requestId);
      assert.deepEqual([view?.api, view?.apiOptions, view?.streamTokens, view?.idempotencyHash, view?.finishReason], ["inference", null, false, null, null]);
    });

    it("a cancelled request that ran is charged what it processed; one that never ran has no ledger row", async () => {
      const ran = newRequest();
      const never = newRequest();
      await store.insertMany([ran, never]);
      const usage = { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 };
      const { changed } = await store.finishMany([
        { requestId: ran.requestId, status: "cancelled", at: new Date(), outputText: "Once", outputs: null, usage, error: null, finishReason: "cancelled", attempt: 1 },
        { requestId: never.requestId, status: "cancelled", at: new Date(), outputText: null, outputs: null, usage: null, error: null, finishReason: "cancelled", attempt: 1 },
      ]);
      assert.equal(changed.size, 2);
      const stored = await store.get(ran.requestId);
      assert.deepEqual([stored?.status, stored?.usage, stored?.finishReason, stored?.outputText], ["cancelled", usage, "cancelled", "Once"]);
      const ledger = await database.db.query<{ request_id: string; total_tokens: number }>(
        "SELECT request_id, total_tokens FROM usage_ledger WHERE request_id = ANY($1::uuid[])",
        [[ran.requestId, never.requestId]],
      );
      assert.deepEqual(ledger.rows.map((r) => [r.request_id, Number(r.total_tokens)]), [[ran.requestId, 7]]);
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
      assert.deepEqual([...changed.keys()].sort(), [a!.requestId, b!.requestId, c!.requestId].sort(), "only the open requests change, each once");
      assert.deepEqual(changed.get(a!.requestId), a!.window, "each with the quota window it was reserved in");
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

    // ------------------------------------------------------------ outbox: claim → publish → mark

    const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000);
    const leaseNow = (ms = 60_000): Lease => ({ now: new Date(), ms });
    const idsOf = (rows: Array<{ requestId: string }>) => rows.map((r) => r.requestId);

    it("claims only old, unpublished requests; a claim keeps others off until marked published", async () => {
      const old = newRequest({ createdAt: minutesAgo(1) });
      const fresh = newRequest({ createdAt: new Date() });
      const published = newRequest({ createdAt: minutesAgo(1) });
      await store.insertMany([old, fresh, published]);
      await outbox.markPublished([published.requestId]);
      const lease = leaseNow();
      const claimed = await outbox.claim(minutesAgo(0.5), 100, lease);
      const byId = new Map(claimed.map((r) => [r.requestId, r]));
      assert.ok(byId.has(old.requestId));
      assert.ok(!byId.has(fresh.requestId), "too young: admission may still be publishing it");
      assert.ok(!byId.has(published.requestId));
      assert.equal(byId.get(old.requestId)?.prompt, old.prompt, "a claim hands out the whole request");
      assert.deepEqual(byId.get(old.requestId)?.params, old.params);
      assert.ok(!idsOf(await outbox.claim(minutesAgo(0.5), 100, lease)).includes(old.requestId), "claimed: not handed out twice");
      await outbox.markPublished([old.requestId]);
      assert.equal((await store.get(old.requestId))?.published, true);
      const afterLease: Lease = { now: new Date(lease.now.getTime() + lease.ms + 1), ms: lease.ms };
      assert.ok(!idsOf(await outbox.claim(minutesAgo(0.5), 100, afterLease)).includes(old.requestId), "published: never claimed again");
    });

    it("a lease that runs out (its claimer died) lets another claimer take the row", async () => {
      const request = newRequest({ createdAt: minutesAgo(2) });
      await store.insert(request);
      const first: Lease = { now: new Date(), ms: 10_000 };
      assert.ok(idsOf(await outbox.claim(minutesAgo(1), 100, first)).includes(request.requestId));
      const at = (ms: number): Lease => ({ now: new Date(first.now.getTime() + ms), ms: 10_000 });
      assert.ok(!idsOf(await outbox.claim(minutesAgo(1), 100, at(9_999))).includes(request.requestId), "the lease still holds");
      assert.ok(idsOf(await outbox.claim(minutesAgo(1), 100, at(10_000))).includes(request.requestId), "the lease ran out");
      assert.ok(!idsOf(await outbox.claim(minutesAgo(1), 100, at(15_000))).includes(request.requestId), "the new claimer's lease holds");
      assert.equal((await store.get(request.requestId))?.published, false);
    });

    it("a released claim (its publish failed) leaves the row unpublished and claimable at once", async () => {
      const request = newRequest({ createdAt: minutesAgo(2) });
      await store.insert(request);
      const lease = leaseNow();
      assert.ok(idsOf(await outbox.claim(minutesAgo(1), 100, lease)).includes(request.requestId));
      await outbox.releaseClaim([request.requestId]);
      assert.equal((await store.get(request.requestId))?.published, false);
      assert.ok(idsOf(await outbox.claim(minutesAgo(1), 100, lease)).includes(request.requestId));
    });

    it("concurrent claimers never get the same row", async () => {
      // Older than every other row here, so the claims reach them first.
      const batch = Array.from({ length: 40 }, (_, i) => newRequest({ createdAt: new Date(Date.UTC(2020, 0, 1, 0, 0, i)) }));
      await store.insertMany(batch);
      const mine = new Set(idsOf(batch));
      const lease = leaseNow();
      const claims = await Promise.all(Array.from({ length: 8 }, () => outbox.claim(minutesAgo(1), 10, lease)));
      const claimedOfMine = claims.flatMap(idsOf).filter((id) => mine.has(id));
      assert.equal(new Set(claimedOfMine).size, claimedOfMine.length, "a row went to two claimers");
      assert.equal(claimedOfMine.length, batch.length, "8 claimers of 10 rows take all 40");
      await outbox.markPublished([...mine]);
    });

    // PGlite has a single connection: no other transaction can hold a lock while a claim runs.
    if (name === "postgres") it("a claim skips rows another transaction has locked instead of waiting for them", async () => {
      const [locked, free] = [newRequest({ createdAt: minutesAgo(3) }), newRequest({ createdAt: minutesAgo(3) })];
      await store.insertMany([locked, free]);
      const other = new pg.Client({ connectionString: database.url });
      await other.connect();
      try {
        await other.query("BEGIN");
        await other.query("SELECT 1 FROM inference_requests WHERE request_id = $1 FOR UPDATE", [locked.requestId]);
        const claimed = idsOf(await withinSeconds(5, outbox.claim(minutesAgo(1), 100, leaseNow())));
        assert.ok(claimed.includes(free.requestId));
        assert.ok(!claimed.includes(locked.requestId));
      } finally {
        await other.query("ROLLBACK");
        await other.end();
      }
      assert.ok(idsOf(await outbox.claim(minutesAgo(1), 100, leaseNow())).includes(locked.requestId), "unlocked, it is claimed");
    });

    it("after a restart with an in-process queue, open requests are marked for publishing again", async () => {
      const open = newRequest({ createdAt: minutesAgo(1) });
      const claimed = newRequest({ createdAt: minutesAgo(1) });
      const done = newRequest({ createdAt: minutesAgo(1) });
      await store.insertMany([open, claimed, done]);
      await outbox.markPublished([open.requestId, done.requestId]);
      const lease = leaseNow(3_600_000);
      assert.ok(idsOf(await outbox.claim(minutesAgo(0.5), 1000, lease)).includes(claimed.requestId), "claimed by the run before");
      await store.finish({
        requestId: done.requestId, status: "failed", at: new Date(), outputText: null, outputs: null, usage: null,
        error: { code: "x", message: "y" }, attempt: 1,
      });
      assert.ok((await outbox.unpublishOpen()) >= 2);
      const seen = idsOf(await outbox.claim(minutesAgo(0.5), 1000, lease));
      assert.ok(seen.includes(open.requestId), "the open request is published again");
      assert.ok(seen.includes(claimed.requestId), "the earlier run's lease is gone with it");
      assert.ok(!seen.includes(done.requestId), "a finished request is not");
      assert.ok((await store.countOpen()) >= 1);
    });

    it("deleteUnpublished removes a request that never reached the broker", async () => {
      const request = newRequest();
      await store.insert(request);
      assert.equal(await outbox.deleteUnpublished(request.requestId), true);
      assert.equal(await store.get(request.requestId), null);
      assert.equal(await outbox.deleteUnpublished(request.requestId), false);
    });

    // ------------------------------------------------------------ expiry: claim → release quota → expire

    it("expires claimed stale requests as failed with code timeout", async () => {
      const stale = newRequest({ createdAt: minutesAgo(60) });
      const recent = newRequest({ createdAt: minutesAgo(1) });
      await store.insertMany([stale, recent]);
      const lease = leaseNow();
      const claimed = await expiry.claim(minutesAgo(30), 1000, lease);
      assert.ok(idsOf(claimed).includes(stale.requestId));
      assert.ok(!idsOf(claimed).includes(recent.requestId));
      assert.equal(claimed.find((c) => c.requestId === stale.requestId)?.userId, stale.userId);
      assert.ok(!idsOf(await expiry.claim(minutesAgo(30), 1000, lease)).includes(stale.requestId), "claimed: not handed out twice");
      const expired = await expiry.expire([stale.requestId], new Date());
      assert.deepEqual(expired, [{ requestId: stale.requestId, userId: stale.userId }]);
      const stored = await store.get(stale.requestId);
      assert.equal(stored?.status, "failed");
      assert.equal(stored?.error?.code, "timeout");
      assert.deepEqual(await expiry.expire([stale.requestId], new Date()), [], "expired once");
    });

    it("an outcome stored between the claim and the expiry wins over the timeout", async () => {
      const request = newRequest({ createdAt: minutesAgo(60) });
      await store.insert(request);
      assert.ok(idsOf(await expiry.claim(minutesAgo(30), 1000, leaseNow())).includes(request.requestId));
      const usage = { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 };
      const finished = await store.finish({
        requestId: request.requestId, status: "completed", at: new Date(), outputText: "late but done", outputs: null, usage, error: null, attempt: 1,
      });
      assert.equal(finished.changed, true, "the claim does not block the outcome");
      assert.deepEqual(await expiry.expire([request.requestId], new Date()), []);
      const stored = await store.get(request.requestId);
      assert.equal(stored?.status, "completed");
      assert.equal(stored?.outputText, "late but done");
      assert.equal(stored?.error, null);
    });

    it("a released claim (its quota release failed) leaves the stale request open, claimable again", async () => {
      const request = newRequest({ createdAt: minutesAgo(60) });
      await store.insert(request);
      const lease = leaseNow();
      assert.ok(idsOf(await expiry.claim(minutesAgo(30), 1000, lease)).includes(request.requestId));
      await expiry.releaseClaim([request.requestId]);
      assert.equal((await store.get(request.requestId))?.status, "queued");
      assert.ok(idsOf(await expiry.claim(minutesAgo(30), 1000, lease)).includes(request.requestId));
      const later: Lease = { now: new Date(lease.now.getTime() + lease.ms), ms: lease.ms };
      assert.ok(idsOf(await expiry.claim(minutesAgo(30), 1000, later)).includes(request.requestId), "its lease runs out too");
    });

    it("a row claimed to be published is not claimed to be expired, and the other way round", async () => {
      const [a, b] = [newRequest({ createdAt: minutesAgo(60) }), newRequest({ createdAt: minutesAgo(60) })];
      await store.insertMany([a, b]);
      const lease = leaseNow();
      const forPublish = idsOf(await outbox.claim(minutesAgo(30), 1000, lease));
      assert.ok(forPublish.includes(a.requestId) && forPublish.includes(b.requestId));
      assert.ok(!idsOf(await expiry.claim(minutesAgo(30), 1000, lease)).includes(a.requestId));
      await outbox.releaseClaim([b.requestId]);
      assert.ok(idsOf(await expiry.claim(minutesAgo(30), 1000, lease)).includes(b.requestId));
      assert.ok(!idsOf(await outbox.claim(minutesAgo(30), 1000, lease)).includes(b.requestId));
    });

    it("lists one user's requests newest first in keyset pages, of one status when asked", async () => {
      // Two share a created_at, so the request id breaks the tie; another user's never shows.
      const userId = `lister-${randomUUID()}`;
      const at = (s: number) => new Date(Date.UTC(2026, 10, 25, 12, 0, s));
      const mine = [at(1), at(2), at(2), at(3), at(4)].map((createdAt) => newRequest({ userId, createdAt }));
      await store.insertMany([...mine, newRequest({ userId: `${userId}-other`, createdAt: at(5) })]);
      const failed = mine[1] as NewRequest;
      await store.finish({ requestId: failed.requestId, status: "failed", at: at(6), outputText: null, outputs: null, usage: null, error: { code: "timeout", message: "late" }, attempt: 1 });
      const newestFirst = [...mine].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.requestId < b.requestId ? 1 : -1)).map((r) => r.requestId);
      const pages: string[][] = [];
      let after: { createdAt: Date; requestId: string } | undefined;
      for (;;) {
        const page = await store.listByUser(userId, { limit: 2, ...(after ? { after } : {}) });
        if (page.length === 0) break;
        pages.push(page.map((v) => v.requestId));
        const last = page[page.length - 1]!;
        after = { createdAt: last.createdAt, requestId: last.requestId };
      }
      assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
      assert.deepEqual(pages.flat(), newestFirst);
      const onlyFailed = await store.listByUser(userId, { limit: 10, status: "failed" });
      assert.deepEqual(onlyFailed.map((v) => [v.requestId, v.status, v.error?.code]), [[failed.requestId, "failed", "timeout"]]);
      assert.equal((await store.listByUser(userId, { limit: 10, status: "queued" })).length, 4);
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

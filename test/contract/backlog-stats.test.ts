/**
 * The queue snapshot behind every estimate (SqlBacklogStats), on PostgreSQL and PGlite: the open
 * backlog, and a throughput measured over the last QUEUE_ESTIMATE_RECENT_REQUESTS finished requests
 * when that many finished within the window (the window then spans them alone), else over the
 * whole window.
 */
import { describe, it, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SqlBacklogStats } from "../../src/adapters/postgres/backlog-stats.js";
import { drainRate } from "../../src/domain/queue-estimate.js";
import { requireServices } from "../support/services.js";
import { freshPglite, freshPostgres, type TestDatabase } from "../support/databases.js";

const skipPostgres = await requireServices("postgres");
const NOW = new Date("2026-12-02T12:00:00Z");
const at = (secondsBefore: number) => new Date(NOW.getTime() - secondsBefore * 1000);

const backends: Array<[string, () => Promise<TestDatabase>, string | undefined]> = [
  ["postgres", freshPostgres, skipPostgres],
  ["pglite", freshPglite, undefined],
];

for (const [name, open, skip] of backends) {
  describe(`the queue snapshot on ${name}`, { skip }, () => {
    let database: TestDatabase;
    let stats: SqlBacklogStats;
    before(async () => {
      database = await open();
      stats = new SqlBacklogStats(database.db);
    });
    after(async () => database?.drop());
    beforeEach(async () => void (await database.db.query({ name: "t_clear", text: "DELETE FROM inference_requests" })));

    /** A request of `tokens` estimated tokens: open, or finished `finishedBefore` seconds before NOW after running `runSeconds`. */
    const request = (tokens: number, finishedBefore?: number, runSeconds = 0.5) =>
      database.db.query(
        {
          name: "t_insert_request",
          text: `INSERT INTO inference_requests (request_id, user_id, model, prompt, params, estimated_tokens, quota_day, quota_month, status, created_at, started_at, completed_at)
                 VALUES ($1, 'u', 'm', 'p', '{}', $2, '2026-12-02', '2026-12', $3, $4, $5, $6)`,
        },
        finishedBefore === undefined
          ? [randomUUID(), tokens, "queued", at(60), null, null]
          : [randomUUID(), tokens, "completed", at(60), at(finishedBefore + runSeconds), at(finishedBefore)],
      );

    it("a high throughput is measured over its last requests: the window spans them alone", async () => {
      // Long ago (within the window) a slow trickle; lately ten requests of 10 tokens, one every 0.1 s.
      for (const s of [8, 7, 6]) await request(10, s);
      for (let i = 0; i < 10; i++) await request(10, 1 + i * 0.1);
      await request(30);
      const snapshot = await stats.snapshot(10, NOW, 10);
      assert.equal(snapshot.openRequests, 1);
      assert.equal(snapshot.openEstimatedTokens, 30);
      // Nine intervals of 0.1 s between the ten, and the nine finishes after the first: 90 tokens in 0.9 s.
      assert.equal(snapshot.finishedRequests, 9);
      assert.equal(snapshot.finishedEstimatedTokens, 90);
      assert.ok(Math.abs(snapshot.windowSeconds - 0.9) < 1e-6, String(snapshot.windowSeconds));
      assert.ok(Math.abs((drainRate(snapshot) ?? 0) - 100) < 1e-6);
      assert.ok(Math.abs((snapshot.meanRunSeconds ?? 0) - 0.5) < 1e-6);
    });

    it("fewer than that many in the window: the whole window, as without a count", async () => {
      for (const s of [8, 7, 6]) await request(10, s);
      await request(10, 20); // outside the window
      for (const recent of [10, undefined]) {
        const snapshot = await stats.snapshot(10, NOW, recent);
        assert.equal(snapshot.finishedRequests, 3);
        assert.equal(snapshot.finishedEstimatedTokens, 30);
        assert.equal(snapshot.windowSeconds, 10);
      }
    });

    it("many finished at one moment (one step of a batch) are not taken for an unbounded rate", async () => {
      for (let i = 0; i < 4; i++) await request(10, 1);
      const snapshot = await stats.snapshot(10, NOW, 4);
      assert.equal(snapshot.windowSeconds, 0.1);
      assert.equal(drainRate(snapshot), 300);
    });
  });
}

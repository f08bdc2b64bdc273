/**
 * What Redis counters are rebuilt from must be one consistent picture: while requests finish (their
 * ledger row and status change commit together), every snapshot holds each request exactly once,
 * open or settled, never both (counted twice after the rebuild) and never neither (free quota).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SqlQuotaLedger } from "../../src/adapters/postgres/quota-ledger.js";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { requireServices } from "../support/services.js";

const skip = await requireServices("postgres");

describe("quota snapshots while requests finish (PostgreSQL)", { skip }, () => {
  let database: TestDatabase;
  before(async () => {
    database = await freshPostgres();
  });
  after(async () => database?.drop());

  it("each request is in every snapshot exactly once", async () => {
    const requests = new SqlRequestStore(database.db);
    const ledger = new SqlQuotaLedger(database.db);
    const userId = `u-${randomUUID()}`;
    const now = new Date();
    const month = now.toISOString().slice(0, 7);
    const window = { day: now.toISOString().slice(0, 10), month };
    const params = { maxLength: 4, temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, numReturnSequences: 1 };
    const ids = Array.from({ length: 300 }, () => randomUUID());
    await requests.insertMany(ids.map((requestId) => ({ requestId, userId, model: "m", prompt: "p", params, estimatedTokens: 9, window, createdAt: now })));
    let finishing = true;
    const finisher = (async () => {
      for (let i = 0; i < ids.length; i += 5) {
        const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
        await requests.finishMany(ids.slice(i, i + 5).map((requestId) => ({ requestId, status: "completed" as const, at: now, outputText: "x", outputs: null, usage, error: null, attempt: 1 })));
      }
      finishing = false;
    })();
    let snapshots = 0;
    while (finishing) {
      const snapshot = (await ledger.snapshots([userId], month)).get(userId)!;
      const settled = snapshot.settledDays.reduce((sum, d) => sum + d.requests, 0);
      assert.equal(settled + snapshot.open.length, ids.length, `snapshot ${snapshots}: ${settled} settled + ${snapshot.open.length} open`);
      snapshots++;
    }
    await finisher;
    assert.ok(snapshots > 5, `only ${snapshots} snapshots were taken while requests finished`);
  });
});

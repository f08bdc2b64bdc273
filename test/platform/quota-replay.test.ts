/**
 * Restarting `all` on embedded defaults: the in-process quota store is rebuilt from the ledger and
 * the open requests in PGlite, so usage survives and open requests are still charged once.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { SqlRequestStore } from "../../src/adapters/postgres/request-store.js";
import { MemoryQuotaStore } from "../../src/adapters/memory/quota-store.js";
import { replayQuota } from "../../src/domain/quota-replay.js";
import { quotaWindow } from "../../src/domain/quota-windows.js";
import type { NewRequest } from "../../src/domain/ports.js";
import { freshPglite } from "../support/databases.js";

const params = { maxLength: 10, temperature: 0, topP: 0.9, topK: 50, repetitionPenalty: 1.2, numReturnSequences: 1 };

describe("quota replay after a restart", () => {
  it("rebuilds used, reserved and request counts, and the open request is settled once later", async () => {
    const database = await freshPglite();
    try {
      const store = new SqlRequestStore(database.db);
      const now = new Date();
      const window = quotaWindow(now);
      const request = (estimatedTokens: number): NewRequest => ({
        requestId: randomUUID(), userId: "alice", model: "m", prompt: "p", params, estimatedTokens, window, createdAt: now,
      });
      const done = [request(50), request(60)];
      const failed = request(70);
      const open = request(80);
      await store.insertMany([...done, failed, open]);
      for (const [r, total] of [[done[0]!, 11], [done[1]!, 13]] as const) {
        await store.finish({
          requestId: r.requestId, status: "completed", at: now, outputText: "x", outputs: null,
          usage: { prompt_tokens: 1, completion_tokens: total - 1, total_tokens: total }, error: null, attempt: 1,
        });
      }
      await store.finish({
        requestId: failed.requestId, status: "failed", at: now, outputText: null, outputs: null, usage: null,
        error: { code: "x", message: "y" }, attempt: 1,
      });

      const quota = new MemoryQuotaStore();
      const replayed = await replayQuota(quota, await store.quotaReplay(window.month));
      assert.deepEqual(replayed, { settled: 2, open: 1 });
      const usage = await quota.usage("alice", now);
      assert.deepEqual(usage.daily, { requests: 3, tokensUsed: 24, tokensReserved: 80 });
      assert.deepEqual(usage.monthly, { requests: 3, tokensUsed: 24, tokensReserved: 80 });

      assert.equal(await quota.settle({ userId: "alice", requestId: open.requestId, actualTokens: 9 }), "settled");
      assert.equal(await quota.settle({ userId: "alice", requestId: done[0]!.requestId, actualTokens: 999 }), "already_settled");
      const after = await quota.usage("alice", now);
      assert.deepEqual(after.daily, { requests: 3, tokensUsed: 33, tokensReserved: 0 });
    } finally {
      await database.drop();
    }
  });
});

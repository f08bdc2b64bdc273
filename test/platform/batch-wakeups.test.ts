/**
 * The dispatcher refills a slot when a line ends, not an interval later: with an interval of ten
 * minutes and two slots, a batch of twelve lines runs to its end after one tick, driven only by the
 * final events of its lines' requests. On the real servers (Redis pub/sub) and embedded.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { platformAdmission } from "../support/admission.js";
import { startPlatform, type Backend, type Platform } from "../support/platform.js";
import { waitForAsync } from "../support/wait.js";
import { silentLogger } from "../../src/observability/logger.js";
import { SqlBatchStore } from "../../src/adapters/postgres/batch-store.js";
import { BatchDispatcher, batchUserResolver } from "../../src/components/gateway/batches/dispatcher.js";
import { insertTestBatch } from "../support/batches.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

const SLOTS = 2;
const LINES = 12;

const chatLine = (id: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content: `Tom had a red ball ${id}` }], max_tokens: 3, temperature: 0 } });

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`batch dispatch woken by its lines' ends on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    let store: SqlBatchStore;
    let dispatcher: BatchDispatcher;

    before(async () => {
      // The gateway's own dispatcher waits ten minutes before its first pass: it takes no part.
      platform = await startPlatform({ backend, env: { BATCH_DISPATCH_CONCURRENCY: String(SLOTS), BATCH_DISPATCH_INTERVAL_MS: "600000" } });
      store = new SqlBatchStore(platform.database.db);
      const gateway = platform.config.gateway;
      dispatcher = new BatchDispatcher({
        config: gateway,
        log: silentLogger,
        store,
        admit: platformAdmission(platform),
        requests: platform.requests,
        userOf: batchUserResolver(platform.users, gateway.anonymous),
        models: ["default", gateway.defaultModel],
        events: platform.events,
      });
    });
    after(async () => {
      await dispatcher?.stop();
      await platform?.stop();
    });

    it("one tick and the lines' final events run a batch with more lines than slots to its end", async () => {
      const user = await platform.createUser();
      const batchId = await insertTestBatch(store, platform.config.gateway, user.userId, Array.from({ length: LINES }, (_, i) => chatLine(`w${i}`)));

      // Started, its timer would first fire in ten minutes; the one pass below claims the first two lines.
      dispatcher.start();
      await dispatcher.tick();
      const first = await store.getBatch(batchId, user.userId);
      assert.equal(first?.status, "in_progress");

      await waitForAsync("the batch to complete on wake-ups alone", async () => (await store.getBatch(batchId, user.userId))?.status === "completed", 60_000);
      const done = await store.getBatch(batchId, user.userId);
      assert.deepEqual(done?.counts, { total: LINES, completed: LINES, failed: 0 });

      // Finalizing came first, and the usage is the sum of what its lines' requests used.
      assert.ok(done?.finalizingAt && done.completedAt && done.finalizingAt <= done.completedAt, "finalizing_at set, not after completed_at");
      assert.equal(done?.model, "default");
      const { rows } = await platform.database.db.query<{ p: number; c: number; t: number }>(
        "SELECT sum(prompt_tokens)::int AS p, sum(completion_tokens)::int AS c, sum(total_tokens)::int AS t FROM inference_requests WHERE user_id = $1",
        [user.userId],
      );
      assert.ok(Number(rows[0]?.t) > 0);
      assert.deepEqual(done?.usage, { inputTokens: Number(rows[0]?.p), outputTokens: Number(rows[0]?.c), totalTokens: Number(rows[0]?.t) });
    });

    it("a batch left finalizing (its replica died while writing the files) is completed by the next pass", async () => {
      const user = await platform.createUser();
      const batchId = await insertTestBatch(store, platform.config.gateway, user.userId, [chatLine("f0")]);
      // Its one line dispatched and refused, so every line is done; then the batch is left finalizing.
      const now = new Date();
      assert.deepEqual((await store.claimLines(now, new Date(now.getTime() + 60_000), 1)).map((l) => l.batchId), [batchId]);
      await store.refuseLine(batchId, 1, null, { code: "invalid_request", message: "refused for the test" });
      assert.ok(await store.finalizeBatch(batchId, new Date()));
      assert.equal((await store.getBatch(batchId, user.userId))?.status, "finalizing");
      await dispatcher.tick();
      const done = await store.getBatch(batchId, user.userId);
      assert.equal(done?.status, "completed");
      assert.ok(done?.errorFileId, "the refused line is in the error file");
      assert.deepEqual(done?.usage, { inputTokens: 0, outputTokens: 0, totalTokens: 0 });
    });
  });
}

/**
 * The dispatcher refills a slot when a line ends, not an interval later: with an interval of ten
 * minutes and two slots, a batch of twelve lines runs to its end after one tick, driven only by the
 * final events of its lines' requests; and a batch created through the gateway is validated and
 * started by its creation's wake-up, not at the gateway's next pass ten minutes later. On the real
 * servers (Redis pub/sub) and embedded.
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
import { BatchDispatcher, batchUserResolver } from "../../src/components/gateway/batches/index.js";
import { insertTestBatch } from "../support/batches.js";
import { VALIDATIONS_PER_PASS } from "../../src/components/gateway/batches/validator.js";
import OpenAI, { toFile } from "openai";

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

    it("a batch created through the gateway: validating at once, then validated, run and completed on wake-ups alone, as the openai client reads it", async () => {
      const user = await platform.createUser();
      const client = new OpenAI({ baseURL: `${platform.url}/v1`, apiKey: user.authorization.replace(/^Bearer /, ""), maxRetries: 0 });
      const file = await client.files.create({ file: await toFile(Buffer.from(["g0", "g1", "g2"].map(chatLine).join("\n")), "in.jsonl"), purpose: "batch" });
      const created = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      assert.equal(created.status, "validating");
      const seen: string[] = [created.status];
      let batch = created;
      await waitForAsync("the batch to complete without a full pass of the gateway's dispatcher", async () => {
        batch = await client.batches.retrieve(created.id);
        if (seen.at(-1) !== batch.status) seen.push(batch.status);
        return ["completed", "failed", "expired", "cancelled"].includes(batch.status);
      }, 60_000);
      assert.equal(batch.status, "completed");
      assert.deepEqual(batch.request_counts, { total: 3, completed: 3, failed: 0 });
      // Whatever the polls caught on the way, in OpenAI's order.
      const order = ["validating", "in_progress", "finalizing", "completed"];
      assert.deepEqual(seen, order.filter((s) => seen.includes(s)), seen.join(" → "));
      assert.ok(batch.in_progress_at! >= batch.created_at && batch.completed_at! >= batch.in_progress_at!);
    });

    it("one wake-up validates every batch waiting, more than one pass validates (the passes go on until none is left)", async () => {
      const user = await platform.createUser();
      // Stored validating with no wake-up (as on another replica), more of them than VALIDATIONS_PER_PASS.
      const ids = Array.from({ length: VALIDATIONS_PER_PASS + 2 }, (_, i) => `batch_wake_${Date.now()}_${i}`);
      for (const [i, batchId] of ids.entries()) {
        const createdAt = new Date();
        const fileId = `file-wake-${batchId}`;
        await store.insertFile({ fileId, userId: user.userId, purpose: "batch", filename: "in.jsonl", content: Buffer.from(chatLine(`v${i}`)), createdAt });
        await store.insertBatch({ batchId, userId: user.userId, endpoint: "/v1/chat/completions", inputFileId: fileId, completionWindow: "24h", metadata: null, createdAt, expiresAt: new Date(createdAt.getTime() + 3_600_000) });
      }
      dispatcher.start();
      dispatcher.validateSoon();
      await waitForAsync("every batch to be validated", async () => {
        const batches = await Promise.all(ids.map((id) => store.getBatch(id, user.userId)));
        return batches.every((b) => b?.status !== "validating");
      }, 30_000);
      await waitForAsync("every batch to complete", async () => (await Promise.all(ids.map((id) => store.getBatch(id, user.userId)))).every((b) => b?.status === "completed"), 60_000);
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

/**
 * The OpenAI Batch API with the official `openai` client, on the real servers and embedded, with
 * the trained model: every line runs through admit() like any request (quota, store, queue, worker,
 * collector). The batch routes and the dispatcher are wired here around the assembled platform, as
 * the gateway will wire them; the dispatcher is ticked by the test, not by its timer, so a batch is
 * `validating` until a tick validates it.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import type { FastifyInstance } from "fastify";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { platformAdmission } from "../support/admission.js";
import { startPlatform, type Backend, type Platform } from "../support/platform.js";
import { createHttpApp } from "../../src/http/server.js";
import { Authenticator } from "../../src/http/authenticator.js";
import { createLogger, silentLogger } from "../../src/observability/logger.js";
import { createAdmission } from "../../src/components/gateway/admission.js";
import { SqlBatchStore } from "../../src/adapters/postgres/batch-store.js";
import { registerBatchRoutes } from "../../src/components/gateway/batches/routes.js";
import { BatchDispatcher, batchUserResolver } from "../../src/components/gateway/batches/index.js";
import type { GatewayConfig } from "../../src/config.js";
import type { BatchStore } from "../../src/domain/batches.js";
import { gate } from "../support/gate.js";
import { PassThrough } from "node:stream";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

type Line = { id: string; custom_id: string; response: { status_code: number; request_id: string; body: any } | null; error: { code: string; message: string } | null };

const chatLine = (id: string, content = "Once upon a time", extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content }], max_tokens: 12, temperature: 0, ...extra } });

for (const backend of ["servers", "embedded"] as Backend[]) {
  describe(`the Batch API on ${backend}`, { skip: backend === "servers" ? skipServers : skipModel }, () => {
    let platform: Platform;
    let app: FastifyInstance;
    let url: string;
    let dispatcher: BatchDispatcher;
    let config: GatewayConfig;
    let store: SqlBatchStore;
    let admit: ReturnType<typeof createAdmission>;
    let models: string[];
    // The routes' clock: moved forward to see files expire.
    let clockShiftMs = 0;

    before(async () => {
      platform = await startPlatform({ backend, env: { BATCH_QUOTA_RETRY_MS: "100", BATCH_DISPATCH_CONCURRENCY: "2", BATCH_DISPATCH_INTERVAL_MS: "600000" } });
      // A copy the tests may change (the completion window) without touching the platform's.
      config = { ...platform.config.gateway, batches: { ...platform.config.gateway.batches } };
      store = new SqlBatchStore(platform.database.db);
      admit = platformAdmission(platform);
      models = ["default", config.defaultModel];
      const auth = new Authenticator({ users: platform.users, anonymous: config.anonymous, cacheTtlMs: 0 });
      app = createHttpApp({ logger: silentLogger, registries: [], bodyLimitBytes: config.bodyLimitBytes });
      registerBatchRoutes(app, { config, log: silentLogger, auth, store, quota: platform.quota, now: () => new Date(Date.now() + clockShiftMs) });
      await app.listen({ port: 0, host: "127.0.0.1" });
      const address = app.server.address() as { port: number };
      url = `http://127.0.0.1:${address.port}`;
      dispatcher = new BatchDispatcher({ config, log: silentLogger, store, admit, requests: platform.requests, userOf: batchUserResolver(platform.users, config.anonymous), models });
    });
    after(async () => {
      await dispatcher?.stop();
      await app?.close();
      await platform?.stop();
    });

    const clientFor = (authorization: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: authorization.replace(/^Bearer /, ""), maxRetries: 0 });
    const upload = async (client: OpenAI, jsonl: string) => client.files.create({ file: await toFile(Buffer.from(jsonl), "in.jsonl"), purpose: "batch" });
    const quotaOf = async (authorization: string) =>
      ((await (await fetch(`${platform.url}/api/v1/quota`, { headers: { authorization } })).json()) as { daily: { requests: number; tokens_used: number; tokens_reserved: number } }).daily;
    const linesOf = async (client: OpenAI, fileId: string | undefined | null): Promise<Line[]> =>
      fileId ? (await (await client.files.content(fileId)).text()).trim().split("\n").map((l) => JSON.parse(l) as Line) : [];

    /** Ticks the dispatcher until the batch is final (what its timer does every interval); `seen` gets each status read. */
    async function runToEnd(client: OpenAI, batchId: string, timeoutMs = 60_000, seen: string[] = []) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        await dispatcher.tick();
        const batch = await client.batches.retrieve(batchId);
        if (seen.at(-1) !== batch.status) seen.push(batch.status);
        if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return batch;
        if (Date.now() > deadline) throw new Error(`batch ${batchId} still ${batch.status}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    /** Counts the batch's lines as stored: each inserted once, whoever validated it. */
    const storedLines = async (batchId: string) =>
      Number((await platform.database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM batch_lines WHERE batch_id = $1", [batchId])).rows[0]!.n);

    it("a 5-line chat batch completes: validating, in_progress, completed; 5 output lines, custom_ids matching, usage summing to the quota moved", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const before = await quotaOf(user.authorization);
      const ids = ["a", "b", "c", "d", "e"];
      const file = await upload(client, ids.map((id, i) => chatLine(id, `Tom had a ${["ball", "dog", "cat", "hat", "car"][i]}`)).join("\n") + "\n");
      assert.equal(file.object, "file");
      assert.equal(file.purpose, "batch");
      assert.equal((await client.files.retrieve(file.id)).bytes, file.bytes);
      const { data: created, response } = await client.batches
        .create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { job: "five" } })
        .withResponse();
      // OpenAI's first status: nothing is read from the file yet, so nothing is counted.
      assert.equal(created.status, "validating");
      assert.equal(created.in_progress_at, undefined);
      assert.equal(response.headers.get("x-ratelimit-limit-tokens"), "100000");
      assert.deepEqual(created.request_counts, { total: 0, completed: 0, failed: 0 });
      assert.equal((await client.batches.retrieve(created.id)).status, "validating", "nothing validates it until the dispatcher runs");
      const seen = [created.status];
      const done = await runToEnd(client, created.id, 60_000, seen);
      assert.deepEqual(seen, ["validating", "in_progress", "completed"], "OpenAI's order, as the client reads it");
      assert.equal(done.status, "completed");
      assert.ok(done.in_progress_at! >= done.created_at && done.finalizing_at! >= done.in_progress_at! && done.completed_at! >= done.finalizing_at!);
      assert.deepEqual(done.request_counts, { total: 5, completed: 5, failed: 0 });
      assert.deepEqual(done.metadata, { job: "five" });
      assert.equal(done.error_file_id, undefined);
      const lines = await linesOf(client, done.output_file_id);
      assert.deepEqual(lines.map((l) => l.custom_id).sort(), ids);
      for (const line of lines) {
        assert.equal(line.error, null);
        assert.equal(line.response!.status_code, 200);
        assert.equal(line.response!.body.object, "chat.completion");
        assert.match(line.id, /^batch_req_/);
      }
      const used = lines.reduce((sum, l) => sum + (l.response!.body.usage.total_tokens as number), 0);
      const after = await quotaOf(user.authorization);
      assert.equal(after.tokens_used - before.tokens_used, used);
      assert.equal(after.requests - before.requests, 5);
      assert.equal(after.tokens_reserved, 0);
      assert.equal((await client.batches.list()).data[0]!.id, created.id);
      const output = (await client.files.list()).data.find((f) => f.id === done.output_file_id)!;
      assert.equal(output.purpose, "batch_output");
      assert.equal(output.expires_at, output.created_at + 30 * 86_400, "BATCH_OUTPUT_FILE_TTL_S by default");
      assert.equal(file.expires_at, file.created_at + 30 * 86_400, "an input file without expires_after: BATCH_INPUT_FILE_TTL_S by default");
      assert.equal((await client.files.retrieve(file.id)).expires_at, file.expires_at);
    });

    it("completions and responses batches answer in their endpoint's shape", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const completions = ["k1", "k2"].map((id) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/completions", body: { model: "default", prompt: "Lily saw", max_tokens: 8 } }));
      const responses = [JSON.stringify({ custom_id: "resp", method: "POST", url: "/v1/responses", body: { model: "default", input: "Ben had a kite", max_output_tokens: 8, metadata: { n: "1" } } })];
      for (const [endpoint, jsonl, object] of [["/v1/completions", completions, "text_completion"], ["/v1/responses", responses, "response"]] as const) {
        const file = await upload(client, jsonl.join("\n"));
        const output_expires_after = { anchor: "created_at" as const, seconds: 7_200 };
        const done = await runToEnd(client, (await client.batches.create({ input_file_id: file.id, endpoint, completion_window: "24h", output_expires_after })).id);
        assert.equal(done.status, "completed");
        const output = await client.files.retrieve(done.output_file_id!);
        assert.equal(output.expires_at, output.created_at + 7_200, "output_expires_after, anchored at the file's creation");
        const lines = await linesOf(client, done.output_file_id);
        assert.equal(lines.length, jsonl.length);
        for (const line of lines) assert.equal(line.response!.body.object, object);
      }
    });

    it("validation failures: validating, then failed naming the line, nothing charged", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const before = await quotaOf(user.authorization);
      /** Created, then validated by one tick: the batch as the client then reads it. */
      const validated = async (fileId: string) => {
        const created = await client.batches.create({ input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" });
        assert.equal(created.status, "validating");
        assert.equal(created.errors, undefined);
        await dispatcher.tick();
        return client.batches.retrieve(created.id);
      };
      const cases: Array<[string, string, number, string | null]> = [
        [[chatLine("x"), chatLine("y"), chatLine("x")].join("\n"), "duplicate_custom_id", 3, "custom_id"],
        [[chatLine("x"), chatLine("y").replace("/v1/chat/completions", "/v1/embeddings")].join("\n"), "invalid_url", 2, "url"],
        [[chatLine("x"), "{oops", chatLine("z")].join("\n"), "invalid_json_line", 2, null],
        [[chatLine("x", "hi", { max_tokens: 0 })].join("\n"), "invalid_parameter", 1, "body.max_tokens"],
      ];
      for (const [jsonl, code, line, param] of cases) {
        const file = await upload(client, jsonl);
        const batch = await validated(file.id);
        assert.equal(batch.status, "failed", code);
        assert.ok(batch.failed_at && batch.in_progress_at === undefined);
        assert.deepEqual(batch.request_counts, { total: 0, completed: 0, failed: 0 });
        const [error] = batch.errors!.data!;
        assert.deepEqual([error!.code, error!.line, error!.param], [code, line, param]);
        await dispatcher.tick();
        assert.equal((await client.batches.retrieve(batch.id)).status, "failed");
        assert.equal(await storedLines(batch.id), 0);
      }
      // The input file deleted before the batch was validated: failed, and the error says so.
      const deleted = await upload(client, chatLine("gone"));
      const orphan = await client.batches.create({ input_file_id: deleted.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await client.files.delete(deleted.id);
      await dispatcher.tick();
      const failed = await client.batches.retrieve(orphan.id);
      assert.equal(failed.status, "failed");
      assert.deepEqual(failed.errors!.data!.map((e) => [e.code, e.line, e.param]), [["file_not_found", null, "input_file_id"]]);
      assert.match(failed.errors!.data![0]!.message ?? "", new RegExp(`${deleted.id} was deleted or expired`));
      // The limits are read per request: lowered here for a moment.
      config.batches.maxLines = 2;
      try {
        const file = await upload(client, [chatLine("1"), chatLine("2"), chatLine("3")].join("\n"));
        const batch = await validated(file.id);
        assert.deepEqual([batch.status, batch.errors!.data![0]!.code, batch.errors!.data![0]!.line], ["failed", "too_many_lines", 3]);
      } finally {
        config.batches.maxLines = platform.config.gateway.batches.maxLines;
      }
      config.batches.fileMaxBytes = 100;
      try {
        await assert.rejects(upload(client, chatLine("big", "x".repeat(200))), (e: unknown) => e instanceof OpenAI.APIError && e.status === 413);
      } finally {
        config.batches.fileMaxBytes = platform.config.gateway.batches.fileMaxBytes;
      }
      const after = await quotaOf(user.authorization);
      assert.deepEqual(after, before, "nothing reserved or charged");
    });

    it("two replicas' dispatchers claim each line once, and a line whose admission died is dispatched again once its lease runs out", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const admitted: string[] = [];
      let crashOnce = true;
      // The replicas' clock: moved past the dead replica's lease instead of waiting for it.
      let ahead = 0;
      const replica = () =>
        new BatchDispatcher({
          config: { ...config, batches: { ...config.batches, dispatchConcurrency: 3, leaseMs: 1_000 } },
          log: silentLogger,
          store,
          // Whichever replica admits a line first dies before its request is stored.
          admit: async (input) => {
            admitted.push(input.idempotency!.key);
            if (crashOnce) {
              crashOnce = false;
              throw new Error("replica died");
            }
            return admit(input);
          },
          requests: platform.requests,
          userOf: batchUserResolver(platform.users, config.anonymous),
          models,
          now: () => new Date(Date.now() + ahead),
        });
      const [one, two] = [replica(), replica()];
      // What the store reports ending (the gateway's batch_lines_total): each line once, whichever replica saw it end.
      const ended: string[] = [];
      const unlisten = store.listen({ linesEnded: (outcome, n) => ended.push(...Array<string>(n).fill(outcome)), batchFinished: (status) => ended.push(`batch ${status}`) });
      const file = await upload(client, ["r1", "r2", "r3"].map((id) => chatLine(id)).join("\n"));
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await Promise.all([one.tick(), two.tick(), one.tick(), two.tick()]);
      assert.equal(await storedLines(batch.id), 3, "validated by one of them: its lines inserted once");
      assert.equal(new Set(admitted).size, admitted.length, `no line claimed twice while its lease holds: ${admitted.join(", ")}`);
      assert.equal(crashOnce, false);
      ahead = 1_100; // the dead replica's lease runs out
      const deadline = Date.now() + 60_000;
      let done = await client.batches.retrieve(batch.id);
      while (done.status !== "completed" && Date.now() < deadline) {
        await Promise.all([one.tick(), two.tick()]);
        await new Promise((r) => setTimeout(r, 100));
        done = await client.batches.retrieve(batch.id);
      }
      assert.equal(done.status, "completed");
      assert.equal(admitted.length, 4, "the crashed line was admitted once more");
      unlisten();
      assert.deepEqual(ended, ["completed", "completed", "completed", "batch completed"]);
      const output = await linesOf(client, done.output_file_id);
      assert.equal(new Set(output.map((l) => l.response!.request_id)).size, 3);
      const quota = await quotaOf(user.authorization);
      assert.equal(quota.requests, 3, "one request per line, reserved and settled once");
      assert.equal(quota.tokens_reserved, 0);
    });

    /**
     * Replicas with their own clock (moved past a lease instead of waiting for it); `slowed` reads
     * input files only once the gate opens, so it holds a batch's validation lease meanwhile. Its
     * log lines are kept in `logged`.
     */
    function validatingReplicas() {
      const clock = { ahead: 0 };
      const slowRead = gate();
      const logged: Array<{ level: string; msg: string; batch_id?: string }> = [];
      const lines = new PassThrough();
      lines.on("data", (chunk: Buffer) => logged.push(...chunk.toString().trim().split("\n").map((l) => JSON.parse(l))));
      const log = createLogger({ level: "info", format: "json", destination: lines });
      const slowStore: BatchStore = Object.assign(Object.create(store) as SqlBatchStore, {
        fileContent: async (...args: Parameters<BatchStore["fileContent"]>) => {
          await slowRead.pass();
          return store.fileContent(...args);
        },
      });
      const replica = (batches: BatchStore) =>
        new BatchDispatcher({
          config: { ...config, batches: { ...config.batches, leaseMs: 1_000 } },
          log,
          store: batches,
          admit,
          requests: platform.requests,
          userOf: batchUserResolver(platform.users, config.anonymous),
          models,
          now: () => new Date(Date.now() + clock.ahead),
        });
      return { clock, slowRead, logged, slowed: replica(slowStore), other: replica(store) };
    }

    it("two replicas validating one batch insert its lines once: the other waits out the lease, and the first, resuming late, writes nothing", async () => {
      const client = clientFor((await platform.createUser({ dailyTokens: 100_000 })).authorization);
      const file = await upload(client, ["v1", "v2", "v3"].map((id) => chatLine(id)).join("\n"));
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      const { clock, slowRead, logged, slowed, other } = validatingReplicas();
      const slowTick = slowed.tick();
      await slowRead.reached; // the slowed replica holds the batch's lease, reading its file
      await other.tick();
      assert.equal((await client.batches.retrieve(batch.id)).status, "validating", "the lease keeps the other replica off it");
      assert.equal(await storedLines(batch.id), 0);
      clock.ahead = 1_100; // the slowed replica's lease runs out: it looks dead
      await other.tick();
      const started = await client.batches.retrieve(batch.id);
      assert.equal(started.status, "in_progress");
      assert.equal(await storedLines(batch.id), 3);
      slowRead.open();
      await slowTick;
      assert.equal(await storedLines(batch.id), 3, "the late replica inserted nothing");
      assert.equal((await client.batches.retrieve(batch.id)).in_progress_at, started.in_progress_at, "nor changed the batch");
      const mine = logged.filter((l) => l.batch_id === batch.id);
      assert.deepEqual(mine.filter((l) => l.level !== "info").map((l) => l.msg), [], "no replica failed on it");
      assert.deepEqual(mine.map((l) => l.msg).filter((m) => m.startsWith("batch validated")).sort(), [
        "batch validated and started",
        "batch validated, but it was no longer validating (cancelled, or validated by another replica)",
      ]);
      await Promise.all([slowed.stop(), other.stop()]);
      const done = await runToEnd(client, batch.id);
      assert.equal(done.status, "completed");
      assert.deepEqual(done.request_counts, { total: 3, completed: 3, failed: 0 });
    });

    it("a validating batch cancelled ends cancelled with no line run, also when it is cancelled while being validated", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const create = async () =>
        client.batches.create({ input_file_id: (await upload(client, ["n1", "n2"].map((id) => chatLine(id)).join("\n"))).id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      const endsCancelled = async (batchId: string) => {
        const done = await runToEnd(client, batchId);
        assert.equal(done.status, "cancelled");
        assert.ok(done.cancelling_at && done.cancelled_at && done.in_progress_at === undefined);
        assert.deepEqual(done.request_counts, { total: 0, completed: 0, failed: 0 });
        assert.equal(done.output_file_id ?? done.error_file_id, undefined, "no line: no output or error file");
        assert.equal(await storedLines(batchId), 0);
      };
      // Before any replica took it.
      const waiting = await create();
      const cancelling = await client.batches.cancel(waiting.id);
      assert.equal(cancelling.status, "cancelling");
      await endsCancelled(waiting.id);
      // While a replica is reading its file: that replica finds it no longer validating.
      const { slowRead, slowed } = validatingReplicas();
      const taken = await create();
      const slowTick = slowed.tick();
      await slowRead.reached;
      assert.equal((await client.batches.cancel(taken.id)).status, "cancelling");
      slowRead.open();
      await slowTick;
      await slowed.stop();
      await endsCancelled(taken.id);
      const quota = await quotaOf(user.authorization);
      assert.deepEqual([quota.requests, quota.tokens_used, quota.tokens_reserved], [0, 0, 0], "nothing reserved or run");
    });

    it("a user with room for 2 requests: 2 lines run, the rest end quota_exceeded when the window ends", async () => {
      config.batches.completionWindowMs = 4_000;
      try {
        const user = await platform.createUser({ dailyRequests: 2, dailyTokens: 100_000 });
        const client = clientFor(user.authorization);
        const file = await upload(client, ["p", "q", "r", "s"].map((id) => chatLine(id)).join("\n"));
        const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
        const done = await runToEnd(client, batch.id);
        assert.equal(done.status, "expired");
        assert.deepEqual(done.request_counts, { total: 4, completed: 2, failed: 2 });
        const output = await linesOf(client, done.output_file_id);
        const errors = await linesOf(client, done.error_file_id);
        assert.equal(output.length, 2);
        assert.deepEqual(errors.map((l) => [l.response, l.error!.code]), [[null, "quota_exceeded"], [null, "quota_exceeded"]]);
        assert.deepEqual(new Set([...output, ...errors].map((l) => l.custom_id)), new Set(["p", "q", "r", "s"]));
        const quota = await quotaOf(user.authorization);
        assert.equal(quota.requests, 2, "never admitted past the limit");
        assert.equal(quota.tokens_reserved, 0);
        assert.equal(quota.tokens_used, output.reduce((sum, l) => sum + (l.response!.body.usage.total_tokens as number), 0));
      } finally {
        config.batches.completionWindowMs = platform.config.gateway.batches.completionWindowMs;
      }
    });

    it("cancel mid-batch: running lines finish, the rest never run, nothing stays reserved", async () => {
      const user = await platform.createUser({ dailyTokens: 100_000 });
      const client = clientFor(user.authorization);
      const ids = ["c1", "c2", "c3", "c4", "c5", "c6"];
      const file = await upload(client, ids.map((id) => chatLine(id)).join("\n"));
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await dispatcher.tick(); // admits BATCH_DISPATCH_CONCURRENCY (2) lines
      const cancelling = await client.batches.cancel(batch.id);
      assert.equal(cancelling.status, "cancelling");
      const done = await runToEnd(client, batch.id);
      assert.equal(done.status, "cancelled");
      assert.ok(done.cancelled_at && done.cancelling_at);
      const output = await linesOf(client, done.output_file_id);
      const errors = await linesOf(client, done.error_file_id);
      assert.equal(output.length, 2, "the lines already admitted ran to the end");
      assert.equal(errors.length, 4);
      assert.ok(errors.every((l) => l.error?.code === "batch_cancelled" && l.response === null));
      const quota = await quotaOf(user.authorization);
      assert.equal(quota.requests, 2);
      assert.equal(quota.tokens_reserved, 0);
    });

    it("files expire: after BATCH_INPUT_FILE_TTL_S unless expires_after says otherwise, an expired file is not found, the sweeper deletes it", async () => {
      const client = clientFor((await platform.createUser()).authorization);
      const file = async (expires_after?: unknown) =>
        client.files.create({ file: await toFile(Buffer.from(chatLine("x")), "in.jsonl"), purpose: "batch", ...(expires_after ? { expires_after } : {}) } as OpenAI.FileCreateParams);
      const hour = await file({ anchor: "created_at", seconds: 3_600 });
      const kept = await file();
      assert.equal(hour.expires_at, hour.created_at + 3_600, "expires_after wins over BATCH_INPUT_FILE_TTL_S");
      assert.equal((await client.files.retrieve(hour.id)).expires_at, hour.expires_at);
      assert.equal(kept.expires_at, kept.created_at + 30 * 86_400, "BATCH_INPUT_FILE_TTL_S by default");
      // The setting is read per upload: 0 (null here) keeps a file until it is deleted; expires_after still wins.
      config.batches.inputFileTtlSeconds = null;
      try {
        const forever = await file();
        assert.equal(forever.expires_at, undefined);
        assert.equal((await client.files.retrieve(forever.id)).expires_at, undefined);
        const twoHours = await file({ anchor: "created_at", seconds: 7_200 });
        assert.equal(twoHours.expires_at, twoHours.created_at + 7_200);
        await client.files.delete(forever.id);
        await client.files.delete(twoHours.id);
      } finally {
        config.batches.inputFileTtlSeconds = platform.config.gateway.batches.inputFileTtlSeconds;
      }
      for (const [bad, param] of [[{ anchor: "created_at", seconds: 60 }, "expires_after.seconds"], [{ anchor: "last_active_at", seconds: 3_600 }, "expires_after.anchor"], [{ anchor: "created_at", seconds: "soon" }, "expires_after.seconds"]] as const) {
        await assert.rejects(file(bad), (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === "invalid_parameter" && e.param === param, JSON.stringify(bad));
      }
      const badOutput = { input_file_id: kept.id, endpoint: "/v1/chat/completions", completion_window: "24h", output_expires_after: { anchor: "created_at", seconds: 2_592_001 } } as const;
      await assert.rejects(client.batches.create(badOutput), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "output_expires_after.seconds");
      clockShiftMs = 3_601_000;
      try {
        const gone = (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === "file_not_found";
        await assert.rejects(client.files.retrieve(hour.id), gone);
        await assert.rejects(client.files.content(hour.id), gone);
        await assert.rejects(client.files.delete(hour.id), gone);
        await assert.rejects(client.batches.create({ input_file_id: hour.id, endpoint: "/v1/chat/completions", completion_window: "24h" }), gone);
        assert.deepEqual((await client.files.list()).data.map((f) => f.id), [kept.id]);
        assert.equal((await client.files.retrieve(kept.id)).id, kept.id);
      } finally {
        clockShiftMs = 0;
      }
      // The gateway's sweeper deletes files whose time is up (by the real clock), and no other.
      const expired = { fileId: `file-expired-${Date.now()}`, userId: "someone", purpose: "batch", filename: "old.jsonl", content: Buffer.from("{}"), createdAt: new Date(Date.now() - 7_200_000), expiresAt: new Date(Date.now() - 1) };
      await store.insertFile(expired);
      const rows = async () => (await platform.database.db.query<{ file_id: string }>("SELECT file_id FROM batch_files WHERE file_id = ANY($1)", [[expired.fileId, hour.id, kept.id]])).rows.map((r) => r.file_id).sort();
      assert.deepEqual(await rows(), [expired.fileId, hour.id, kept.id].sort());
      assert.ok((await platform.gateway.sweep()).expiredFiles >= 1);
      assert.deepEqual(await rows(), [hour.id, kept.id].sort());
    });

    it("another user's file and batch are not found", async () => {
      const owner = clientFor((await platform.createUser()).authorization);
      const other = clientFor((await platform.createUser()).authorization);
      const file = await upload(owner, chatLine("only"));
      const batch = await owner.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await owner.batches.cancel(batch.id);
      for (const call of [
        () => other.files.retrieve(file.id),
        () => other.files.content(file.id),
        () => other.files.delete(file.id),
        () => other.batches.retrieve(batch.id),
        () => other.batches.cancel(batch.id),
        () => other.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
      ]) {
        await assert.rejects(call(), (e: unknown) => e instanceof OpenAI.NotFoundError);
      }
      assert.equal((await other.files.list()).data.length, 0);
      assert.equal((await other.batches.list()).data.length, 0);
      assert.equal((await owner.files.delete(file.id)).deleted, true);
      await assert.rejects(owner.files.retrieve(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
      await runToEnd(owner, batch.id);
    });
  });
}

/**
 * Fair scheduling of batch work, on the real servers, with the trained model: every
 * line runs through admit(), the queue, the worker and the collector. Two dispatcher replicas share
 * the store (their leases and the claim lock keep them apart) and are ticked by the test; the
 * platform's own dispatcher stays idle (a 10-minute interval). What is measured comes from the
 * requests the platform stored (their tokens, created_at and started_at), not from the scheduler's
 * own bookkeeping.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { requireServices } from "../support/services.js";
import { requireStoriesModel } from "../support/model.js";
import { platformAdmission } from "../support/admission.js";
import { startPlatform, submit, waitForFinal, type Platform } from "../support/platform.js";
import { silentLogger } from "../../src/observability/logger.js";
import { SqlBatchStore } from "../../src/adapters/postgres/batch-store.js";
import { BatchDispatcher, batchUserResolver } from "../../src/components/gateway/batches/index.js";
import { insertTestBatch } from "../support/batches.js";

const skipModel = requireStoriesModel();
const skipServers = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

/** Batch lines admitted and unfinished at once per model: fewer than the worker takes (WORKER_PREFETCH 8, 4 sequences). */
const SLOTS = 3;
/** How often the replicas' own timers tick them in the interactive test (BATCH_DISPATCH_INTERVAL_MS). */
const INTERVAL = 50;

/** A line of `words` words; with max_tokens 1 its tokens are nearly all prompt, so its cost follows its length. */
const chatLine = (id: string, words: number, maxTokens = 1) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "default", messages: [{ role: "user", content: Array.from({ length: words }, (_, i) => ["Tom", "had", "a", "red", "ball"][i % 5]).join(" ") }], max_tokens: maxTokens, temperature: 0 },
  });

/** The nearest-rank percentile. */
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.ceil((p / 100) * values.length) - 1] as number;

// On the real servers only: embedded, the model, the broker and the database share one event loop
// with the test, so a queue wait of a millisecond or two doubles with any load at all, and PGlite's
// one connection makes the races several times slower (the claim's SQL runs there in batches.test).
describe("fair scheduling of batches on servers", { skip: skipServers }, () => {
  let platform: Platform;
  let store: SqlBatchStore;
  let replicas: BatchDispatcher[];

  /** A dispatcher replica; its own timer ticks it every `intervalMs` once started. */
  const replica = (intervalMs = platform.config.gateway.batches.dispatchIntervalMs) =>
    new BatchDispatcher({
      config: { ...platform.config.gateway, batches: { ...platform.config.gateway.batches, dispatchIntervalMs: intervalMs } },
      log: silentLogger,
      store,
      admit: platformAdmission(platform),
      requests: platform.requests,
      userOf: batchUserResolver(platform.users, platform.config.gateway.anonymous),
      models: ["default", platform.config.gateway.defaultModel],
    });

  before(async () => {
    platform = await startPlatform({
      backend: "servers",
      env: { BATCH_DISPATCH_CONCURRENCY: String(SLOTS), BATCH_DISPATCH_INTERVAL_MS: "600000" },
    });
    store = new SqlBatchStore(platform.database.db);
    replicas = [replica(), replica()];
  });
  after(async () => {
    for (const r of replicas ?? []) await r.stop();
    await platform?.stop();
  });

  const query = async <T>(text: string, params: unknown[] = []) => (await platform.database.db.query<T>(text, params)).rows;

  const createBatch = (userId: string, lines: string[]) => insertTestBatch(store, platform.config.gateway, userId, lines);

  /** Lines admitted and unfinished, or leased, per model: what the slots bound. */
  const busyPerModel = async () =>
    (await query<{ n: number }>(
      "SELECT count(*)::int AS n FROM batch_lines WHERE status = 'dispatched' OR (status = 'pending' AND claimed_until > now()) GROUP BY model",
    )).map((r) => Number(r.n));

  /**
   * Ticks both replicas at once, round after round, until `done` says so; halfway through
   * `restartAfter` rounds the replicas are replaced by fresh ones (what a restart leaves: the
   * database). Returns the most lines ever busy at once for one model.
   */
  async function runUntil(done: () => Promise<boolean>, options: { restartAfter?: number; timeoutMs?: number } = {}): Promise<number> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    let most = 0;
    for (let round = 1; !(await done()); round++) {
      await Promise.all(replicas.map((r) => r.tick()));
      most = Math.max(most, ...(await busyPerModel()));
      // PGlite answers without leaving the microtask queue: give the worker's deliveries their turn,
      // as the dispatcher's own timer does between ticks.
      await new Promise((resolve) => setImmediate(resolve));
      if (round === options.restartAfter) replicas = [replica(), replica()];
      if (Date.now() > deadline) throw new Error("the batches did not get far enough in time");
    }
    return most;
  }

  const pendingOf = async (batchId: string) =>
    Number((await query<{ n: number }>("SELECT count(*)::int AS n FROM batch_lines WHERE batch_id = $1 AND status <> 'done'", [batchId]))[0]?.n);
  const tokensOf = async (userId: string) =>
    Number((await query<{ n: number }>("SELECT COALESCE(sum(total_tokens), 0)::int AS n FROM inference_requests WHERE user_id = $1 AND status = 'completed'", [userId]))[0]?.n);
  const setWeight = async (userId: string, weight: number) => assert.ok(await store.setTierWeight(`tier-${userId}`, weight));

  /**
   * Two tenants' batches, the heavier tenant's created first (so arrival order alone would run it
   * to its end before the other starts), each line of it about three times the tokens of the
   * other's: run until either has nothing left, so both were backlogged the whole time.
   */
  async function race(weights: [number, number]) {
    const [heavy, light] = [await platform.createUser(), await platform.createUser()];
    await setWeight(heavy.userId, weights[0]);
    await setWeight(light.userId, weights[1]);
    const heavyBatch = await createBatch(heavy.userId, Array.from({ length: 200 }, (_, i) => chatLine(`h${i}`, 30)));
    const lightBatch = await createBatch(light.userId, Array.from({ length: 300 }, (_, i) => chatLine(`l${i}`, 6)));
    const most = await runUntil(async () => (await pendingOf(heavyBatch)) === 0 || (await pendingOf(lightBatch)) === 0, { restartAfter: 20 });
    const [heavyTokens, lightTokens] = [await tokensOf(heavy.userId), await tokensOf(light.userId)];
    // The rest is cancelled so the next test starts with nothing of these in flight (the batch that
    // ran out is finished already: cancelling it changes nothing).
    await store.cancelBatch(heavyBatch, heavy.userId, new Date());
    await store.cancelBatch(lightBatch, light.userId, new Date());
    await runUntil(async () => (await pendingOf(heavyBatch)) + (await pendingOf(lightBatch)) === 0);
    return { heavyTokens, lightTokens, most };
  }

  it("two tenants' batches of equal weight progress at equal token rates (±10 %), though one came first with lines three times the tokens", async () => {
    const { heavyTokens, lightTokens, most } = await race([1, 1]);
    assert.ok(lightTokens > 500, `enough ran to measure: ${lightTokens}`);
    const ratio = heavyTokens / lightTokens;
    assert.ok(ratio >= 0.9 && ratio <= 1.1, `token ratio ${ratio.toFixed(3)} (${heavyTokens} : ${lightTokens})`);
    assert.ok(most <= SLOTS, `at most ${SLOTS} lines busy per model over both replicas, saw ${most}`);
  });

  it("weights 2:1 give 2:1 (±10 %)", async () => {
    const { heavyTokens, lightTokens } = await race([2, 1]);
    const ratio = heavyTokens / lightTokens;
    assert.ok(ratio >= 1.8 && ratio <= 2.2, `token ratio ${ratio.toFixed(3)} (${heavyTokens} : ${lightTokens})`);
  });

  it("while a tenant's 2,000-line batch runs, another's 20 interactive requests wait at p99 at most 2× what they wait on an idle system", async () => {
    const [batchUser, interactive] = [await platform.createUser(), await platform.createUser()];
    const openOf = async (userId: string) =>
      Number((await query<{ n: number }>("SELECT count(*)::int AS n FROM inference_requests WHERE user_id = $1 AND status IN ('queued', 'processing')", [userId]))[0]?.n);
    async function until(what: string, condition: () => Promise<boolean>) {
      const deadline = Date.now() + 20_000;
      while (!(await condition())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    /** Queue wait of one request: from admission (created_at) to the worker starting the model call (started_at). */
    async function wait(i: number): Promise<number> {
      const accepted = await submit(platform.url, { prompt: `Lily saw a bird ${i}`, max_length: 2, temperature: 0 }, interactive.authorization);
      assert.equal(accepted.status, 202);
      const id = accepted.body.request_id as string;
      assert.equal((await waitForFinal(platform.url, id, interactive.authorization)).status, "completed");
      const [row] = await query<{ wait_ms: number }>("SELECT extract(epoch FROM (started_at - created_at)) * 1000 AS wait_ms FROM inference_requests WHERE request_id = $1", [id]);
      return Number(row?.wait_ms);
    }
    for (let i = 0; i < 5; i++) await wait(i); // warm: the first requests of a process pay for compiling and connecting

    // Lines of 32 tokens, so the batch keeps its slots busy between ticks.
    const batch = await createBatch(batchUser.userId, Array.from({ length: 2_000 }, (_, i) => chatLine(`b${i}`, 6, 32)));
    let timed: BatchDispatcher[] = [];
    let most = 0;
    const [idle, busy]: [number[], number[]] = [[], []];
    try {
      // Idle and busy requests alternate, so both see the same machine (other processes share its cores).
      for (let i = 0; i < 20; i++) {
        await until("the batch's requests to end", async () => (await openOf(batchUser.userId)) === 0);
        idle.push(await wait(i));
        // The replicas run on their own timers, as in a gateway.
        timed = [replica(INTERVAL), replica(INTERVAL)];
        for (const r of timed) r.start();
        await until("batch lines in flight", async () => (await openOf(batchUser.userId)) >= Math.min(SLOTS, 3));
        busy.push(await wait(i));
        most = Math.max(most, ...(await busyPerModel()));
        for (const r of timed) await r.stop();
      }
    } finally {
      for (const r of timed) await r.stop();
    }
    const ran = 2_000 - (await pendingOf(batch));
    assert.ok(await store.cancelBatch(batch, batchUser.userId, new Date()));
    await runUntil(async () => (await pendingOf(batch)) === 0);

    assert.ok(ran >= 40, `the batch ran meanwhile: ${ran} lines`);
    assert.ok(most <= SLOTS, `at most ${SLOTS} batch lines in flight, saw ${most}`);
    const [idleP99, busyP99] = [percentile(idle, 99), percentile(busy, 99)];
    const all = (waits: number[]) => waits.map(Math.round).join(" ");
    assert.ok(busyP99 <= 2 * idleP99, `p99 queue wait ${busyP99.toFixed(1)} ms with the batch running (${all(busy)}), ${idleP99.toFixed(1)} ms idle (${all(idle)})`);
  });
});

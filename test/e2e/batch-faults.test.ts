/**
 * The batch dispatcher killed mid-batch: every component its own `ml-inference <component>` process
 * on the real servers, a 300-line batch running, the gateway (which dispatches) killed with SIGKILL
 * while some lines are done, some admitted and some not yet claimed, then started again. The batch
 * still completes with every line answered once, admitted once (its Idempotency-Key
 * `batch:<batch>:<line>` names one request) and charged once, in Redis and in the ledger alike.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { deleteQueues, deleteRedisKeys } from "../support/cleanup.js";
import { requireServices, serverEnv, uniqueName } from "../support/services.js";
import { requireStoriesModel, STORIES_MODEL_PATH } from "../support/model.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";
import { runCommand, startProcess, waitForHttp, type Proc, componentsEnv } from "../support/processes.js";
import { sleep } from "../support/wait.js";
import { idempotentRequestId } from "../../src/components/gateway/admission.js";

const skipModel = requireStoriesModel();
const skip = skipModel ?? (await requireServices("postgres", "redis", "rabbitmq"));

const LINES = 300;
const USER = "batch-fault-user";

type OutputLine = { id: string; custom_id: string; response: { status_code: number; request_id: string; body: any } | null; error: { code: string } | null };
/** The batch's lines by state, and the requests admitted for them (fewer than done + dispatched: some dispatched, not yet admitted). */
type LineStates = { done: number; dispatched: number; waiting: number; admitted: number };

describe("the gateway killed (SIGKILL) mid-batch, then started again", { skip, timeout: 300_000 }, () => {
  let database: TestDatabase;
  const procs = new Map<string, Proc>();
  const ports: Record<string, number> = {};
  let env: Record<string, string>;
  let apiKey: string;
  const prefix = `${uniqueName("bf")}:`;
  const queues = { requests: uniqueName("bf_req"), results: uniqueName("bf_res") };

  const start = async (name: string) => {
    const proc = startProcess(name, [name], { ...env, PORT: String(ports[name]) });
    procs.set(name, proc);
    await waitForHttp(`http://127.0.0.1:${ports[name]}/health`, proc);
  };

  before(async () => {
    database = await freshPostgres();
    const shared = await componentsEnv(serverEnv(database.url!, queues, prefix), STORIES_MODEL_PATH, "batch-faults-internal-token");
    Object.assign(ports, shared.ports);
    env = {
      ...shared.env,
      // Lines go out a few at a time, so the kill finds some done, some running and most not claimed;
      // a short lease so the lines the dead gateway had dispatched but not admitted go out again soon after.
      BATCH_DISPATCH_INTERVAL_MS: "100",
      BATCH_DISPATCH_CONCURRENCY: "8",
      BATCH_LEASE_MS: "2000",
      // A line stored but not yet published when the gateway died is published by the sweeper.
      SWEEP_INTERVAL_MS: "500",
      SWEEP_UNPUBLISHED_AFTER_MS: "2000",
    };
    const migrated = await runCommand(["migrate"], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    for (const args of [["tiers", "set", "batch-faults", "--daily-requests", "10000", "--daily-tokens", "10000000"], ["users", "create", USER, "--tier", "batch-faults"]]) {
      const run = await runCommand(args, env);
      assert.equal(run.code, 0, run.stderr);
    }
    apiKey = JSON.parse((await runCommand(["keys", "create", USER], env)).stdout).api_key as string;
    for (const name of ["ml-service", "api-service", "worker", "collector", "gateway"]) await start(name);
  });

  after(async () => {
    for (const proc of procs.values()) await proc.stop();
    await database?.drop();
    await deleteRedisKeys(prefix);
    await deleteQueues(Object.values(queues));
  });

  const states = async (batchId: string): Promise<LineStates> => {
    const { rows } = await database.db.query<Record<keyof LineStates, number>>(
      `SELECT count(*) FILTER (WHERE status = 'done')::int AS done,
              count(*) FILTER (WHERE status = 'dispatched')::int AS dispatched,
              count(*) FILTER (WHERE status = 'pending')::int AS waiting,
              (SELECT count(*) FROM inference_requests WHERE user_id = $2)::int AS admitted
       FROM batch_lines WHERE batch_id = $1`,
      [batchId, USER],
    );
    return rows[0]!;
  };
  const quota = async () =>
    ((await (await fetch(`http://127.0.0.1:${ports["api-service"]}/api/v1/quota`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { daily: { requests: number; tokens_used: number; tokens_reserved: number } }).daily;
  /** The restarted gateway's batch metrics: sample name and labels → value. */
  const metrics = async () => {
    const text = await (await fetch(`http://127.0.0.1:${ports.gateway}/metrics`)).text();
    return [...text.matchAll(/^(batch_lines_total|batches_finished_total|batch_lines_pending)\{([^}]*)\} (\S+)$/gm)].map((m) => ({ name: m[1]!, labels: m[2]!, value: Number(m[3]) }));
  };
  const metric = async (name: string, labels?: string) => (await metrics()).filter((m) => m.name === name && (labels === undefined || m.labels.includes(labels))).reduce((sum, m) => sum + m.value, 0);
  const waitForMetric = async (what: string, ok: (value: number) => boolean, name: string) => {
    for (const deadline = Date.now() + 60_000; !ok(await metric(name)); await sleep(100)) assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
  };
  const ledger = async () =>
    (await database.db.query<{ rows: number; tokens: number }>("SELECT count(*)::int AS rows, COALESCE(sum(total_tokens), 0)::int AS tokens FROM usage_ledger WHERE user_id = $1", [USER])).rows[0]!;

  it("completes with every line answered, admitted and charged exactly once", async (t) => {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${ports.gateway}/v1`, apiKey, maxRetries: 0 });
    const quotaBefore = await quota();
    const ledgerBefore = await ledger();
    const customIds = Array.from({ length: LINES }, (_, i) => `line-${i}`);
    const jsonl = customIds
      .map((id, i) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content: `Tom had ${i} balls` }], max_tokens: 4, temperature: 0 } }))
      .join("\n");
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    assert.equal(batch.status, "validating");

    // Killed when lines have finished and lines have not been claimed yet; preferably while the
    // gateway has dispatched lines it has not admitted yet: the case a crash must turn neither into
    // a line lost nor into a line admitted twice (else while lines are dispatched, else anyway).
    const gateway = procs.get("gateway")!;
    let atKill: LineStates | undefined;
    for (const deadline = Date.now() + 120_000; !atKill; ) {
      const s = await states(batch.id);
      const unadmitted = s.admitted < s.done + s.dispatched;
      const late = s.waiting < LINES / 3 + 40;
      if (s.done >= 16 && s.waiting >= LINES / 3 && (unadmitted || (late && s.dispatched > 0) || s.waiting < LINES / 3 + 8)) {
        gateway.child.kill("SIGKILL");
        atKill = s;
      }
      assert.ok(Date.now() < deadline, `the batch never got going: ${JSON.stringify(s)}\n${gateway.output()}`);
    }
    await new Promise<void>((resolve) => (gateway.child.exitCode !== null || gateway.child.signalCode !== null ? resolve() : gateway.child.once("exit", () => resolve())));
    assert.equal(gateway.child.signalCode, "SIGKILL");
    const afterKill = await states(batch.id);
    // Lines the dead gateway had dispatched, and of those the ones it had admitted already.
    const { rows: held } = await database.db.query<{ line: number }>("SELECT line FROM batch_lines WHERE batch_id = $1 AND status = 'dispatched'", [batch.id]);
    const { rows: admittedHeld } = await database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM inference_requests WHERE request_id = ANY($1::uuid[])", [
      held.map((l) => idempotentRequestId(USER, `batch:${batch.id}:${l.line}`)),
    ]);
    t.diagnostic(`at the kill: ${JSON.stringify(atKill)}; after it: ${JSON.stringify(afterKill)}; dispatched and not admitted: ${held.length - admittedHeld[0]!.n}`);
    assert.ok(afterKill.waiting > 0 && afterKill.done > 0, JSON.stringify(afterKill));

    await start("gateway");
    await waitForMetric("the backlog gauge to count the lines left", (n) => n > 0, "batch_lines_pending");
    let done = await client.batches.retrieve(batch.id);
    for (const deadline = Date.now() + 180_000; !["completed", "failed", "expired", "cancelled"].includes(done.status); ) {
      assert.ok(Date.now() < deadline, `batch still ${done.status}: ${JSON.stringify(await states(batch.id))}`);
      await sleep(200);
      done = await client.batches.retrieve(batch.id);
    }
    assert.equal(done.status, "completed");
    assert.equal(done.request_counts!.total, LINES);
    assert.equal(done.request_counts!.completed + done.request_counts!.failed, LINES);

    const linesOf = async (id: string | undefined | null): Promise<OutputLine[]> =>
      id ? (await (await client.files.content(id)).text()).trimEnd().split("\n").map((l) => JSON.parse(l) as OutputLine) : [];
    const output = await linesOf(done.output_file_id);
    const errors = await linesOf(done.error_file_id);
    assert.deepEqual(errors.map((l) => [l.custom_id, l.error?.code ?? l.response?.status_code]), [], "no line failed");
    const answered = [...output, ...errors].map((l) => l.custom_id).sort();
    assert.deepEqual(answered, [...customIds].sort(), "every custom_id exactly once across the output and error files");
    assert.equal(done.request_counts!.completed, output.length);

    // One request per line, and it is the one its Idempotency-Key names.
    const { rows: lineRows } = await database.db.query<{ line: number; custom_id: string; request_id: string }>(
      "SELECT line, custom_id, request_id FROM batch_lines WHERE batch_id = $1 ORDER BY line",
      [batch.id],
    );
    const expected = new Map(lineRows.map((l) => [l.custom_id, idempotentRequestId(USER, `batch:${batch.id}:${l.line}`)]));
    const { rows: requests } = await database.db.query<{ request_id: string; status: string }>("SELECT request_id, status FROM inference_requests WHERE user_id = $1", [USER]);
    assert.equal(requests.length, LINES, "no line admitted as a second request");
    for (const l of lineRows) assert.equal(l.request_id, expected.get(l.custom_id), `line ${l.line} kept the request its key names`);
    for (const l of output) assert.equal(l.response!.request_id, expected.get(l.custom_id), `${l.custom_id} answered by its own request`);
    assert.deepEqual(requests.map((r) => r.request_id).sort(), [...expected.values()].sort());
    assert.ok(requests.every((r) => r.status === "completed"));

    // Charged once: Redis counters and the ledger moved by exactly what the output file reports.
    const used = output.reduce((sum, l) => sum + (l.response!.body.usage.total_tokens as number), 0);
    assert.ok(used > 0);
    const quotaAfter = await quota();
    assert.equal(quotaAfter.tokens_used - quotaBefore.tokens_used, used, "Redis tokens used");
    assert.equal(quotaAfter.requests - quotaBefore.requests, LINES, "Redis requests counted");
    assert.equal(quotaAfter.tokens_reserved, 0, "nothing left reserved");
    const ledgerAfter = await ledger();
    assert.deepEqual({ rows: ledgerAfter.rows - ledgerBefore.rows, tokens: ledgerAfter.tokens - ledgerBefore.tokens }, { rows: LINES, tokens: used }, "usage ledger");

    // The restarted gateway counted the lines it ended, each once (none ended while no gateway ran).
    assert.equal(await metric("batch_lines_total", 'outcome="completed"'), LINES - afterKill.done);
    assert.equal(await metric("batch_lines_total"), LINES - afterKill.done);
    assert.equal(await metric("batches_finished_total", 'status="completed"'), 1);
    await waitForMetric("the backlog gauge to read 0", (n) => n === 0, "batch_lines_pending");
  });
});

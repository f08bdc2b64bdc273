/**
 * The client's Batch API and `ml-inference batch …` against a real platform (embedded adapters,
 * the trained model, the gateway's own batch dispatcher): a batch of a few lines uploaded, followed
 * to completed with progress, its output read line by line; the CLI's create --wait, status,
 * output and cancel as a user's shell runs them, with the documented exit codes.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { requireStoriesModel } from "../support/model.js";
import { cli as runCli, show, type Run } from "../support/cli.js";

const cli = (args: string[], env: { url: string; key: string }) => runCli(args, env, 90_000);
import { startPlatform, type Platform } from "../support/platform.js";
import { waitForAsync } from "../support/wait.js";
import { Client, ClientError, type Batch } from "../../src/client/index.js";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const skip = requireStoriesModel();




const chatLine = (id: string, content: string, maxTokens = 8) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "default", messages: [{ role: "user", content }], max_tokens: maxTokens, temperature: 0 } });

const outputLines = (text: string) => text.trimEnd().split("\n").map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: any } | null; error: unknown });

describe("client batches and `ml-inference batch` against the embedded platform with the model", { skip, timeout: 240_000 }, () => {
  let platform: Platform;
  let key: string;
  let client: Client;
  let dir: string;

  before(async () => {
    // Two lines in flight at a time: a cancel has lines left that never run.
    platform = await startPlatform({ backend: "embedded", env: { BATCH_DISPATCH_INTERVAL_MS: "100", BATCH_DISPATCH_CONCURRENCY: "2" } });
    key = (await platform.createUser()).authorization.replace(/^Bearer /, "");
    client = new Client({ baseUrl: platform.url, apiKey: key });
    dir = mkdtempSync(join(tmpdir(), "ml-inference-batch-"));
  });
  after(async () => {
    await platform?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("submit, wait with progress until completed, then read the output: one answer per line", async () => {
    const lines = [chatLine("a", "Once upon a time"), chatLine("b", "The little dog"), chatLine("c", "A cat")];
    const created = await client.batches.submit(lines.join("\n") + "\n", { filename: "three.jsonl" });
    assert.match(created.id, /^batch_/);
    // Validating: its lines are counted once they are validated.
    assert.equal(created.status, "validating");
    assert.equal(created.requestCounts.total, 0);
    const seen: Batch[] = [];
    const final = await client.batches.wait(created.id, { timeoutMs: 90_000, pollMs: 100, onProgress: (b) => seen.push(b) });
    assert.equal(final.status, "completed", JSON.stringify(final));
    assert.deepEqual(final.requestCounts, { total: 3, completed: 3, failed: 0 });
    assert.ok(seen.length >= 1 && seen.at(-1)!.status === "completed", "the last progress is the final batch");
    const done = seen.map((b) => b.requestCounts.completed);
    assert.deepEqual(done, [...done].sort((x, y) => x - y), "progress never goes back");
    const output = outputLines((await client.batches.output(final)) ?? "");
    assert.deepEqual(output.map((l) => l.custom_id).sort(), ["a", "b", "c"]);
    for (const l of output) {
      assert.equal(l.response?.status_code, 200);
      assert.equal(typeof l.response?.body.choices[0].message.content, "string");
    }
    assert.equal(await client.batches.output(final, { errors: true }), null, "no line failed: no error file");
    const page = await client.batches.list({ limit: 10 });
    assert.ok(page.data.some((b) => b.id === final.id));
  });

  it("a file with a bad line makes a batch validating, then failed naming the line; an unknown batch is ClientError batch_not_found", async () => {
    const created = await client.batches.submit(`${chatLine("ok", "Hi")}\n{"custom_id":"bad"}\n`);
    assert.equal(created.status, "validating");
    const failed = await client.batches.wait(created.id, { timeoutMs: 60_000, pollMs: 50 });
    assert.equal(failed.status, "failed");
    assert.ok(failed.errors?.some((e) => e.line === 2), JSON.stringify(failed.errors));
    await assert.rejects(client.batches.retrieve("batch_nope"), (e: unknown) => e instanceof ClientError && e.code === "batch_not_found" && e.status === 404);
  });

  it("batch create --wait --json: plain progress lines on stderr, the final batch as JSON, exit 0; then status and output", async () => {
    const file = join(dir, "two.jsonl");
    writeFileSync(file, [chatLine("x", "Once upon a time"), chatLine("y", "The sun")].join("\n") + "\n");
    const run = await cli(["batch", "create", file, "--wait", "--json"], { url: platform.url, key });
    assert.equal(run.code, 0, show(run));
    const final = JSON.parse(run.stdout) as Batch;
    assert.equal(final.status, "completed");
    assert.deepEqual(final.requestCounts, { total: 2, completed: 2, failed: 0 });
    // Not a terminal: progress is plain lines, no carriage returns or escapes.
    assert.doesNotMatch(run.stderr, /\r|\x1b/);
    assert.match(run.stderr, new RegExp(`^${final.id} completed 2/2 done \\(2 completed, 0 failed\\)$`, "m"), show(run));

    const [status, output] = await Promise.all([cli(["batch", "status", final.id], { url: platform.url, key }), cli(["batch", "output", final.id], { url: platform.url, key })]);
    assert.equal(status.code, 0, show(status));
    assert.match(status.stdout, /^status {5}completed$/m);
    assert.equal(output.code, 0, show(output));
    assert.deepEqual(outputLines(output.stdout).map((l) => l.custom_id).sort(), ["x", "y"]);
  });

  it("the CLI's failures: a bad file or endpoint exits 2 (another endpoint is taken), an unknown batch 3, a failed batch and a missing error file 1", async () => {
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, `{"custom_id":"bad"}\n`);
    const env = { url: platform.url, key };
    const completions = join(dir, "completions.jsonl");
    writeFileSync(completions, JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/completions", body: { model: "default", prompt: "Once", max_tokens: 4 } }) + "\n");
    const [missing, endpoint, unknown, failed, other] = await Promise.all([
      cli(["batch", "create", join(dir, "absent.jsonl")], env),
      cli(["batch", "create", bad, "--endpoint", "/v1/embeddings"], env),
      cli(["batch", "status", "batch_nope"], env),
      cli(["batch", "create", bad, "--wait"], env),
      cli(["batch", "create", completions, "--endpoint=/v1/completions", "--json"], env),
    ]);
    assert.equal(other.code, 0, show(other));
    assert.equal(JSON.parse(other.stdout).endpoint, "/v1/completions", "--endpoint=VALUE is read too");
    assert.equal(missing.code, 2, show(missing));
    assert.match(missing.stderr, /^error: usage: batch: cannot read .*absent\.jsonl: ENOENT/, show(missing));
    assert.equal(endpoint.code, 2, show(endpoint));
    assert.equal(unknown.code, 3, show(unknown));
    assert.match(unknown.stderr, /^error: batch_not_found: no batch batch_nope\n$/, show(unknown));
    assert.equal(failed.code, 1, show(failed));
    // Created validating; --wait follows it to failed (its progress lines first).
    assert.match(failed.stderr, /\nerror: batch_failed: batch batch_\w+: the batch ended failed\n$/, show(failed));
    assert.match(failed.stdout, /^status {5}failed$/m, show(failed));
    const id = /^batch {6}(batch_\w+)$/m.exec(failed.stdout)?.[1];
    assert.ok(id, show(failed));
    const noErrors = await cli(["batch", "output", id, "--errors"], env);
    assert.equal(noErrors.code, 1, show(noErrors));
    assert.match(noErrors.stderr, /^error: no_output: /, show(noErrors));
  });

  it("batch cancel: a batch cancelled at once ends cancelled, exit 0; the lines that never ran are in the error file", async () => {
    const lines = Array.from({ length: 12 }, (_, i) => chatLine(`l${i}`, "Once upon a time", 200));
    const created = await client.batches.submit(lines.join("\n"));
    // Cancelled once it runs, so that it has lines that never ran (cancelled while validating, it would have none).
    await waitForAsync("the batch to be validated", async () => (await client.batches.retrieve(created.id)).status !== "validating", 30_000);
    const run = await cli(["batch", "cancel", created.id, "--json"], { url: platform.url, key });
    assert.equal(run.code, 0, show(run));
    assert.ok(["cancelling", "cancelled", "completed"].includes(JSON.parse(run.stdout).status), run.stdout);
    const final = await client.batches.wait(created.id, { timeoutMs: 90_000, pollMs: 100 });
    assert.equal(final.status, "cancelled", JSON.stringify(final));
    // Lines that never ran are counted failed (they are in the error file), so not all 12 completed.
    assert.ok(final.requestCounts.completed < 12, JSON.stringify(final.requestCounts));
    assert.ok(final.errorFileId, "the lines that never ran are in the error file");
  });
});

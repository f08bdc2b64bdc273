/**
 * The admin CLI's webhooks commands, run as child processes on the embedded database in a temporary
 * DATA_DIR (the same SQL as PostgreSQL): create prints the secret once, a private address is refused
 * without WEBHOOK_ALLOW_PRIVATE, list shows the status, delete removes it.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "warn" };
  return new Promise((done) =>
    execFile(process.execPath, ["--import", "tsx", "src/main.ts", ...args], { cwd: ROOT, env: { ...base, ...env }, timeout: 60_000 }, (error, stdout, stderr) =>
      done({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    ),
  );
}

describe("webhooks commands on the embedded database", () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "mli-webhooks-cli-"));
    const created = await cli(["users", "create", "alice"], { DATA_DIR: dataDir });
    assert.equal(created.code, 0, created.stderr);
  });
  after(async () => rm(dataDir, { recursive: true, force: true }));

  it("create, list, delete; a private address needs WEBHOOK_ALLOW_PRIVATE; an unknown event type is refused", async () => {
    const env = { DATA_DIR: dataDir };
    const refused = await cli(["webhooks", "create", "alice", "http://127.0.0.1:9/hook"], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error \(webhook_address_refused\): /);
    const unknown = await cli(["webhooks", "create", "alice", "http://127.0.0.1:9/hook", "--events", "batch.done"], { ...env, WEBHOOK_ALLOW_PRIVATE: "true" });
    assert.match(unknown.stderr, /^error \(unknown_webhook_event\): /);
    const nobody = await cli(["webhooks", "create", "bob", "http://127.0.0.1:9/hook"], { ...env, WEBHOOK_ALLOW_PRIVATE: "true" });
    assert.match(nobody.stderr, /^error \(not_found\): no user bob/);

    const created = await cli(["webhooks", "create", "alice", "http://127.0.0.1:9/hook", "--events", "batch.completed,inference.failed"], { ...env, WEBHOOK_ALLOW_PRIVATE: "true" });
    assert.equal(created.code, 0, created.stderr);
    const endpoint = JSON.parse(created.stdout);
    assert.match(endpoint.id, /^whe_/);
    assert.match(endpoint.secret, /^whsec_/);
    assert.deepEqual(endpoint.events, ["batch.completed", "inference.failed"]);

    const listed = JSON.parse((await cli(["webhooks", "list", "alice"], env)).stdout);
    assert.deepEqual(listed.map((e: Record<string, unknown>) => [e.id, e.user_id, e.status, "secret" in e]), [[endpoint.id, "alice", "enabled", false]]);
    assert.deepEqual(JSON.parse((await cli(["webhooks", "list", "bob"], env)).stdout), []);

    const deleted = await cli(["webhooks", "delete", endpoint.id], env);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(JSON.parse((await cli(["webhooks", "list"], env)).stdout), []);
    const again = await cli(["webhooks", "delete", endpoint.id], env);
    assert.match(again.stderr, /^error \(not_found\): /);
  });
});

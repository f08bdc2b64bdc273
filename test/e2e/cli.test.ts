/**
 * The real command line, run as child processes from the repository root: migrations, tiers, users
 * and API keys on a private PostgreSQL schema, and the embedded database in a temporary DATA_DIR.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { requireServices } from "../support/services.js";
import { freshPostgres, type TestDatabase } from "../support/databases.js";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const skipPostgres = await requireServices("postgres");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx src/main.ts ...args` with only the given settings (no server URLs leak in). */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  const base: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: "warn" };
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/main.ts", ...args],
      { cwd: ROOT, env: { ...base, ...env }, timeout: 30_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolvePromise({ code, stdout, stderr });
      },
    );
  });
}

function json(run: Run): any {
  try {
    return JSON.parse(run.stdout);
  } catch {
    assert.fail(`stdout is not JSON (exit ${run.code}): ${run.stdout}\nstderr: ${run.stderr}`);
  }
}

function ok(run: Run, what: string): void {
  assert.equal(run.code, 0, `${what}: exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

function assertNoStack(run: Run): void {
  assert.doesNotMatch(run.stderr, /\n\s+at |node:internal/, `no stack trace: ${run.stderr}`);
}

describe("command line on PostgreSQL", { skip: skipPostgres }, () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    // freshPostgres migrates the schema; start from an empty one so `migrate` has work to do.
    database = await freshPostgres();
    await database.db.query("DROP TABLE IF EXISTS usage_ledger, inference_requests, api_keys, users, tiers CASCADE");
    const tracking = await database.db.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    );
    for (const row of tracking.rows) await database.db.query(`DROP TABLE IF EXISTS "${row.table_name}" CASCADE`);
    env = { DATABASE_URL: database.url as string };
  });
  after(async () => database?.drop());

  it("migrate applies the migrations once; the second run applies nothing", async () => {
    const first = await cli(["migrate"], env);
    ok(first, "first migrate");
    const applied = json(first);
    assert.ok(Array.isArray(applied.applied) && applied.applied.length > 0, first.stdout);
    assert.ok(applied.schema_version !== undefined && applied.schema_version !== null);
    const second = await cli(["migrate"], env);
    ok(second, "second migrate");
    const again = json(second);
    assert.deepEqual(again.applied, []);
    assert.deepEqual(again.schema_version, applied.schema_version);
    const tables = await database.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ('tiers','users','api_keys','inference_requests','usage_ledger')",
    );
    assert.equal(tables.rows[0]?.n, 5, "the migrations ran in the private schema");
  });

  it("tiers set and tiers list", async () => {
    const set = await cli(["tiers", "set", "gold", "--daily-requests", "5"], env);
    ok(set, "tiers set");
    assert.deepEqual(json(set), {
      name: "gold",
      limits: { dailyRequests: 5, dailyTokens: null, monthlyRequests: null, monthlyTokens: null },
    });
    const row = await database.db.query<{ daily_requests: number; daily_tokens: number | null }>(
      "SELECT daily_requests, daily_tokens FROM tiers WHERE name = 'gold'",
    );
    assert.equal(Number(row.rows[0]?.daily_requests), 5);
    assert.equal(row.rows[0]?.daily_tokens, null);

    const list = await cli(["tiers", "list"], env);
    ok(list, "tiers list");
    const tiers = json(list) as Array<{ name: string; limits: Record<string, number | null> }>;
    const names = tiers.map((t) => t.name);
    for (const name of ["free", "pro", "gold"]) assert.ok(names.includes(name), `tiers list shows ${name}: ${list.stdout}`);
    assert.equal(tiers.find((t) => t.name === "gold")?.limits.dailyRequests, 5);

  });

  it("tiers set --weight gives a tier its share of batch work, kept when left out; a bad weight exits 1", async () => {
    ok(await cli(["tiers", "set", "batchy", "--weight", "2.5"], env), "tiers set --weight");
    ok(await cli(["tiers", "set", "batchy", "--daily-requests", "7"], env), "tiers set without --weight");
    const list = await cli(["tiers", "list"], env);
    ok(list, "tiers list");
    const batchy = (json(list) as Array<{ name: string; weight: number; limits: Record<string, number | null> }>).find((t) => t.name === "batchy");
    assert.deepEqual([batchy?.weight, batchy?.limits.dailyRequests], [2.5, 7]);
    const bad = await cli(["tiers", "set", "batchy", "--weight", "0"], env);
    assert.equal(bad.code, 1, `${bad.stdout} ${bad.stderr}`);
    assert.match(bad.stderr, /^error \(invalid_parameter\): --weight must be a number from 0\.01 to 1000\n$/);
    assertNoStack(bad);
  });

  it("users create with a tier; an invalid id or a duplicate exits 1 with a clear message", async () => {
    const created = await cli(["users", "create", "alice", "--tier", "gold"], env);
    ok(created, "users create");
    assert.deepEqual(json(created), { user_id: "alice", tier: "gold" });
    const row = await database.db.query<{ tier: string }>("SELECT tier FROM users WHERE user_id = 'alice'");
    assert.equal(row.rows[0]?.tier, "gold");

    // Independent failures run side by side: each process pays tsx's start-up.
    const [invalid, duplicate] = await Promise.all([cli(["users", "create", "bad id;"], env), cli(["users", "create", "alice"], env)]);
    assert.equal(invalid.code, 1, `${invalid.stdout} ${invalid.stderr}`);
    assert.match(invalid.stderr, /^error \(invalid_parameter\): user id: 1-128 characters of letters, digits and \. _ @ -\n$/);
    assertNoStack(invalid);
    assert.equal(duplicate.code, 1);
    assert.match(duplicate.stderr, /error \(conflict\)/);
    assertNoStack(duplicate);

    const count = await database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM users");
    assert.equal(count.rows[0]?.n, 1, "only alice was created");
  });

  it("keys create prints the key once; only its SHA-256 is stored; keys revoke", async () => {
    const created = await cli(["keys", "create", "alice"], env);
    ok(created, "keys create");
    const key = json(created) as { user_id: string; key_id: string; api_key: string; note: string };
    assert.equal(key.user_id, "alice");
    assert.match(key.api_key, /^mli_[A-Za-z0-9_-]{20,}$/);
    assert.match(key.key_id, /^key_[0-9a-f]+$/);
    assert.match(key.note, /not shown again/);

    const rows = await database.db.query<Record<string, unknown>>("SELECT * FROM api_keys");
    assert.equal(rows.rows.length, 1);
    const stored = rows.rows[0] as Record<string, unknown>;
    assert.equal(stored.key_id, key.key_id);
    assert.equal(stored.key_hash, createHash("sha256").update(key.api_key).digest("hex"));
    const everything = JSON.stringify(rows.rows);
    assert.ok(!everything.includes(key.api_key), "no plaintext key in api_keys");
    assert.ok(!everything.includes(key.api_key.slice(4)), "not even the secret without its prefix");

    const revoked = await cli(["keys", "revoke", key.key_id], env);
    ok(revoked, "keys revoke");
    assert.deepEqual(json(revoked), { key_id: key.key_id, revoked: true });
    const after = await database.db.query<{ revoked_at: Date | null }>("SELECT revoked_at FROM api_keys WHERE key_id = $1", [key.key_id]);
    assert.ok(after.rows[0]?.revoked_at, "revoked_at is set");

    const twice = await cli(["keys", "revoke", key.key_id], env);
    assert.equal(twice.code, 1, "revoking again finds no active key");
    assert.match(twice.stderr, /error \(not_found\)/);
  });

  it("users set-tier moves a user; an unknown user exits 1", async () => {
    const moved = await cli(["users", "set-tier", "alice", "pro"], env);
    ok(moved, "users set-tier");
    assert.deepEqual(json(moved), { user_id: "alice", tier: "pro" });
    const row = await database.db.query<{ tier: string }>("SELECT tier FROM users WHERE user_id = 'alice'");
    assert.equal(row.rows[0]?.tier, "pro");

    const noUser = await cli(["users", "set-tier", "nobody", "pro"], env);
    assert.equal(noUser.code, 1);
    assert.match(noUser.stderr, /error \(not_found\): no user nobody/);
    assertNoStack(noUser);
  });

  it("unknown commands exit 2; help exits 0", async () => {
    const [unknown, help] = await Promise.all([cli(["frobnicate"], env), cli(["help"], {})]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"; run "ml-inference help"/);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^ml-inference/);
    assert.match(help.stdout, /keys create <user-id>/);
    assert.match(help.stdout, /migrate/);
  });
});

describe("command line on the embedded database (DATA_DIR, no DATABASE_URL)", () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "mli-cli-"));
  });
  after(async () => rm(dataDir, { recursive: true, force: true }));

  it("users create then keys create in another process: the user persisted in DATA_DIR", async () => {
    const env = { DATA_DIR: dataDir };
    const created = await cli(["users", "create", "carol"], env);
    ok(created, "users create");
    assert.deepEqual(json(created), { user_id: "carol", tier: "free" });

    const key = await cli(["keys", "create", "carol"], env);
    ok(key, "keys create");
    const body = json(key) as { user_id: string; api_key: string; key_id: string };
    assert.equal(body.user_id, "carol", "the second process found the user the first one created");
    assert.match(body.api_key, /^mli_/);

  });
});

/**
 * Versioned migrations: every `NNNN_name.sql` in ./migrations runs once, in order, recorded in
 * schema_migrations. Running it again changes nothing. On real PostgreSQL an advisory lock keeps two
 * migrators (say, two pods) from racing.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { SqlClient } from "./sql-client.js";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);
const LOCK_KEY = 8_151_023; // any constant shared by every migrator of this schema

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((file) => /^\d{4}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: readFileSync(new URL(file, MIGRATIONS_DIR), "utf8"),
    }));
}

export async function migrate(db: SqlClient): Promise<{ applied: string[]; current: number }> {
  await db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
  );
  const applied: string[] = [];
  // One transaction for all pending migrations: the transaction-scoped advisory lock makes a second
  // migrator wait, then find nothing left to do; a failing migration leaves the schema untouched.
  await db.transaction(async (tx) => {
    if (db.kind === "pg") await tx.query("SELECT pg_advisory_xact_lock($1)", [LOCK_KEY]);
    const done = new Set(
      (await tx.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map((r) => Number(r.version)),
    );
    for (const migration of loadMigrations()) {
      if (done.has(migration.version)) continue;
      for (const statement of splitStatements(migration.sql)) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name]);
      applied.push(migration.name);
    }
  });
  const current = (await db.query<{ v: number | null }>("SELECT MAX(version) AS v FROM schema_migrations")).rows[0]?.v ?? 0;
  return { applied, current: Number(current) };
}

/**
 * Splits a migration file into statements: at semicolons, except inside a `$$ … $$` function body
 * (our migrations use no semicolons inside literals).
 */
export function splitStatements(text: string): string[] {
  const code = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("--"))
    .join("\n");
  const statements: string[] = [];
  let current = "";
  code.split("$$").forEach((part, i) => {
    // Odd parts lie between a pair of $$: a body, kept whole.
    if (i % 2 === 1) {
      current += `$$${part}$$`;
      return;
    }
    const pieces = part.split(";");
    current += pieces[0];
    for (const piece of pieces.slice(1)) {
      statements.push(current);
      current = piece;
    }
  });
  statements.push(current);
  return statements.map((s) => s.trim()).filter(Boolean);
}

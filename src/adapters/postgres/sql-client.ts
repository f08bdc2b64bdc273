/**
 * A minimal SQL client over either a pg Pool (real PostgreSQL) or PGlite (PostgreSQL in-process,
 * same SQL, same migrations). Everything above this file is written once for both.
 */
import pg from "pg";
import type { PGlite } from "@electric-sql/pglite";

export interface SqlResult<T> {
  rows: T[];
  rowCount: number;
}

/**
 * A statement: plain text, or named so that PostgreSQL parses and plans it once per connection
 * (a prepared statement). Names must not be reused for other text; behind PgBouncer in transaction
 * mode prepared statements need its `max_prepared_statements` support.
 */
export type Statement = string | { name: string; text: string };

export interface SqlExecutor {
  query<T = Record<string, unknown>>(statement: Statement, params?: unknown[]): Promise<SqlResult<T>>;
}

const pgQuery = (statement: Statement, params: unknown[]) =>
  typeof statement === "string" ? { text: statement, values: params } : { name: statement.name, text: statement.text, values: params };
const textOf = (statement: Statement) => (typeof statement === "string" ? statement : statement.text);

export interface SqlClient extends SqlExecutor {
  readonly kind: "pg" | "pglite";
  /** Runs several statements separated by semicolons (migrations). */
  exec(sql: string): Promise<void>;
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// pg returns int8 (bigint) as string by default; our counts fit in a double.
pg.types.setTypeParser(20, (value) => Number(value));
// Keep DATE as the plain "YYYY-MM-DD" string: a quota window is a calendar day, not an instant.
pg.types.setTypeParser(1082, (value) => value);

export class PgSqlClient implements SqlClient {
  readonly kind = "pg" as const;
  private readonly pool: pg.Pool;

  constructor(options: { connectionString: string; max?: number; schema?: string; applicationName?: string }) {
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      application_name: options.applicationName ?? "ml-inference",
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
      connectionTimeoutMillis: 5_000,
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on("error", () => undefined);
  }

  async query<T>(statement: Statement, params: unknown[] = []): Promise<SqlResult<T>> {
    const result = await this.pool.query(pgQuery(statement, params));
    return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const tx: SqlExecutor = {
        query: async <R>(statement: Statement, params: unknown[] = []) => {
          const result = await client.query(pgQuery(statement, params));
          return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
        },
      };
      const value = await work(tx);
      await client.query("COMMIT");
      return value;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export class PgliteSqlClient implements SqlClient {
  readonly kind = "pglite" as const;

  private constructor(private readonly db: PGlite) {}

  /** `dataDir` undefined = in memory (tests). */
  static async open(dataDir?: string): Promise<PgliteSqlClient> {
    const { PGlite } = await import("@electric-sql/pglite");
    const db = dataDir ? new PGlite(dataDir) : new PGlite();
    await db.waitReady;
    return new PgliteSqlClient(db);
  }

  async query<T>(statement: Statement, params: unknown[] = []): Promise<SqlResult<T>> {
    const result = await this.db.query<T>(textOf(statement), params);
    return { rows: result.rows.map(normalizeRow) as T[], rowCount: result.affectedRows ?? result.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.db.exec(sql);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) =>
      work({
        query: async <R>(statement: Statement, params: unknown[] = []) => {
          const result = await tx.query<R>(textOf(statement), params);
          return { rows: result.rows.map(normalizeRow) as R[], rowCount: result.affectedRows ?? result.rows.length };
        },
      }),
    );
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** PGlite returns DATE as a Date and int8 as bigint; align both with the pg settings above. */
function normalizeRow<T>(row: T): T {
  if (row === null || typeof row !== "object") return row;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row as Record<string, unknown>)) {
    if (typeof value === "bigint") out[key] = Number(value);
    else if (value instanceof Date && key.endsWith("_day")) out[key] = value.toISOString().slice(0, 10);
    else out[key] = value;
  }
  return out as T;
}

/**
 * A minimal SQL client over either a pg Pool (real PostgreSQL) or PGlite (PostgreSQL in-process,
 * same SQL, same migrations). Everything above this file is written once for both.
 */
import pg from "pg";
import type { PGlite } from "@electric-sql/pglite";
import { AppError } from "../../errors.js";

export interface SqlResult<T> {
  rows: T[];
  rowCount: number;
}

/**
 * A statement: plain text, or named so that PostgreSQL parses and plans it once per connection
 * (a prepared statement). Names must not be reused for other text; behind PgBouncer in transaction
 * mode prepared statements need its `max_prepared_statements` support.
 */
export type Statement = string | { name: string; text: string; bulk?: boolean };

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

/** Bounds on a pool's calls; see ServiceBounds in config.ts. */
export interface PgBounds {
  queryTimeoutMs: number;
  bulkQueryTimeoutMs: number;
  connectTimeoutMs: number;
}

/**
 * Generous defaults for callers that pass none (tools, benches filling millions of rows, test
 * support): a bound against hanging forever, no more. The components pass the configured ones.
 */
const DEFAULT_BOUNDS: PgBounds = { queryTimeoutMs: 300_000, bulkQueryTimeoutMs: 600_000, connectTimeoutMs: 5_000 };

export class PgSqlClient implements SqlClient {
  readonly kind = "pg" as const;
  private readonly pool: pg.Pool;
  private readonly bounds: PgBounds;
  /**
   * Set when a call timed out with no answer from the database since it began (blackholed, not just
   * slow): then every call fails at once, instead of each waiting out its bound in turn behind the
   * others (admission's batched inserts would queue several bounds deep), while a probe (SELECT 1)
   * tries the database every PROBE_INTERVAL_MS; its first answer clears it.
   */
  private down = false;
  private closed = false;
  private lastAnswerAt = 0;
  /** Callers waiting for a client: each gives up when the database is taken for down. */
  private readonly acquiring = new Set<() => void>();

  constructor(options: { connectionString: string; max?: number; schema?: string; applicationName?: string; bounds?: Partial<PgBounds> }) {
    this.bounds = { ...DEFAULT_BOUNDS, ...options.bounds };
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      application_name: options.applicationName ?? "ml-inference",
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
      connectionTimeoutMillis: this.bounds.connectTimeoutMs,
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on("error", () => undefined);
  }

  async query<T>(statement: Statement, params: unknown[] = []): Promise<SqlResult<T>> {
    const bound = isBulk(statement) ? this.bounds.bulkQueryTimeoutMs : this.bounds.queryTimeoutMs;
    return this.withClient(bound, (client, deadline) => runBounded<T>(client, pgQuery(statement, params), deadline));
  }

  async exec(sql: string): Promise<void> {
    await this.withClient(this.bounds.bulkQueryTimeoutMs, (client, deadline) => runBounded(client, { text: sql }, deadline));
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.withClient(this.bounds.bulkQueryTimeoutMs, async (client, deadline) => {
      await runBounded(client, { text: "BEGIN" }, deadline);
      try {
        const value = await work({ query: <R>(statement: Statement, params: unknown[] = []) => runBounded<R>(client, pgQuery(statement, params), deadline) });
        await runBounded(client, { text: "COMMIT" }, deadline);
        return value;
      } catch (error) {
        // A client left inside a transaction must not go back to the pool: discarded, PostgreSQL rolls back.
        if (isTimeout(error)) throw error;
        const rolledBack = await runBounded(client, { text: "ROLLBACK" }, deadline).then(() => true, () => false);
        if (!rolledBack) throw new SqlTimeout("service_unavailable", "the database did not finish the transaction", { retryAfterSeconds: 1, cause: error });
        throw error;
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.end();
  }

  /**
   * A pooled client for `work`, given back after it: healthy when `work` succeeded or failed with an
   * SQL error, discarded when it timed out (its socket reset at once, so a statement it still holds
   * unsent, as over a dead network, can never reach the server after the caller was told it failed).
   */
  private async withClient<T>(boundMs: number, work: (client: pg.PoolClient, deadline: number) => Promise<T>, probe = false): Promise<T> {
    if (this.down && !probe) throw new AppError("service_unavailable", "the database is not answering", { retryAfterSeconds: 1 });
    const startedAt = Date.now();
    try {
      const client = await this.acquire();
      const deadline = Date.now() + boundMs;
      // A checked-out client has no listener of the pool's: a connection reset between statements
      // would be an uncaught 'error' (the statement running gets the error itself).
      let broken: Error | undefined;
      const onError = (error: Error) => (broken = error);
      client.on("error", onError);
      try {
        const value = await work(client, deadline);
        client.removeListener("error", onError);
        client.release(broken);
        this.answered();
        return value;
      } catch (error) {
        client.removeListener("error", onError);
        if (isTimeout(error)) discard(client);
        else {
          client.release(broken ?? (isConnectionError(error) ? (error as Error) : undefined));
          if (!isConnectionError(error)) this.answered();
        }
        throw error;
      }
    } catch (error) {
      // Nothing at all answered since this call began: the database is taken for down (see `down`).
      if (isTimeout(error) && this.lastAnswerAt < startedAt) this.markDown();
      throw error;
    }
  }

  private answered(): void {
    this.lastAnswerAt = Date.now();
    this.down = false;
  }

  private markDown(): void {
    if (this.down || this.closed) return;
    this.down = true;
    for (const giveUp of [...this.acquiring]) giveUp();
    void (async () => {
      while (this.down && !this.closed) {
        const probe = (client: pg.PoolClient, deadline: number) => runBounded(client, { text: "SELECT 1" }, deadline);
        const ok = await this.withClient(this.bounds.queryTimeoutMs, probe, true).then(() => true, () => false);
        if (!ok) await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
      }
    })();
  }

  /**
   * Waits for a client: an idle one at once, a new connection at most PG_CONNECT_TIMEOUT_MS (so a
   * cold pool on a busy host still connects), and no longer once the database is taken for down.
   * One that comes later goes back to the pool.
   */
  private acquire(): Promise<pg.PoolClient> {
    const connecting = this.pool.connect();
    return new Promise<pg.PoolClient>((resolve, reject) => {
      const giveUp = () => {
        clearTimeout(timer);
        this.acquiring.delete(giveUp);
        connecting.then((late) => late.release(), () => undefined);
        reject(timedOut("no database connection", Date.now()));
      };
      const timer = setTimeout(giveUp, this.bounds.connectTimeoutMs);
      this.acquiring.add(giveUp);
      connecting.then(
        (client) => {
          if (!this.acquiring.delete(giveUp)) return;
          clearTimeout(timer);
          resolve(client);
        },
        (error: unknown) => {
          if (!this.acquiring.delete(giveUp)) return;
          clearTimeout(timer);
          reject(new AppError("service_unavailable", "the database cannot be reached", { retryAfterSeconds: 1, cause: error }));
        },
      );
    });
  }
}

const PROBE_INTERVAL_MS = 100;

const isBulk = (statement: Statement) => typeof statement !== "string" && statement.bulk === true;

class SqlTimeout extends AppError {}

function timedOut(what: string, deadline: number): AppError {
  return new SqlTimeout("service_unavailable", `${what}: the database did not answer in time`, { retryAfterSeconds: 1, internal: { lateByMs: Date.now() - deadline } });
}

const isTimeout = (error: unknown) => error instanceof SqlTimeout;

/** pg's own errors for a connection that broke (as opposed to an SQL error, which has a code). */
const isConnectionError = (error: unknown) => error instanceof Error && !(error instanceof AppError) && !("code" in error && typeof (error as { code: unknown }).code === "string" && /^[0-9A-Z]{5}$/.test((error as { code: string }).code));

async function runBounded<T>(client: pg.PoolClient, query: pg.QueryConfig, deadline: number): Promise<SqlResult<T>> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw timedOut("statement not sent", deadline);
  try {
    const result = await client.query({ ...query, query_timeout: remaining } as pg.QueryConfig);
    return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
  } catch (error) {
    if (error instanceof Error && error.message === "Query read timeout") throw timedOut("statement", deadline);
    throw error;
  }
}

/** Resets the client's socket (RST, unsent bytes dropped) and removes it from the pool. */
function discard(client: pg.PoolClient): void {
  // pg has no public way to drop a connection without first writing a Terminate behind what hangs.
  const stream = (client as unknown as { connection?: { stream?: { resetAndDestroy?: () => void; destroy: () => void } } }).connection?.stream;
  try {
    stream?.resetAndDestroy?.();
  } catch {
    /* not a plain TCP socket (TLS): destroyed below */
  }
  stream?.destroy();
  client.release(new Error("discarded after a timeout"));
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

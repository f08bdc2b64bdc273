/** Fresh, migrated databases for suites: a private schema on the real server, or PGlite in memory. */
import pg from "pg";
import { PgSqlClient, PgliteSqlClient, type SqlClient } from "../../src/adapters/postgres/sql-client.js";
import { migrate } from "../../src/adapters/postgres/migrate.js";
import { TEST_URLS, uniqueName } from "./services.js";

export interface TestDatabase {
  db: SqlClient;
  /** Connection string of the real server (schema via search_path), for child processes. */
  url?: string;
  schema?: string;
  drop(): Promise<void>;
}

export async function freshPostgres(): Promise<TestDatabase> {
  const schema = uniqueName("t").toLowerCase();
  const admin = new pg.Client({ connectionString: TEST_URLS.postgres });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const db = new PgSqlClient({ connectionString: TEST_URLS.postgres, schema, max: 10 });
  await migrate(db);
  const url = `${TEST_URLS.postgres}${TEST_URLS.postgres.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return {
    db,
    url,
    schema,
    drop: async () => {
      await db.close();
      const cleanup = new pg.Client({ connectionString: TEST_URLS.postgres });
      await cleanup.connect();
      await cleanup.query(`DROP SCHEMA ${schema} CASCADE`);
      await cleanup.end();
    },
  };
}

export async function freshPglite(): Promise<TestDatabase> {
  const db = await PgliteSqlClient.open();
  await migrate(db);
  return { db, drop: () => db.close() };
}

/**
 * How long the quota takes to come back after Redis lost its data: a month of 1,000,000 ledger rows
 * in PostgreSQL, Redis emptied, then every user's counters rebuilt by their first admission.
 *
 *   npm run bench:quota             (real PostgreSQL and Redis; DATABASE_URL / REDIS_URL override)
 *   BENCH_JSON=path                 also write quota_rebuild_seconds_1m and quota_rebuild_seconds_one_user_1m
 *
 * Two shapes of the same million rows: spread over 10,000 users (100 requests each, all rebuilt at
 * once with 64 admissions in flight), and one user holding all of them.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { Redis } from "ioredis";
import { PgSqlClient } from "../src/adapters/postgres/sql-client.js";
import { migrate } from "../src/adapters/postgres/migrate.js";
import { SqlQuotaLedger } from "../src/adapters/postgres/quota-ledger.js";
import { RedisQuotaStore } from "../src/adapters/redis/quota-store.js";
import { quotaWindow } from "../src/domain/quota-windows.js";
import type { QuotaLimits } from "../src/domain/ports.js";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0";
const ROWS = Number(process.env.BENCH_LEDGER_ROWS ?? 1_000_000);
const USERS = 10_000;
const IN_FLIGHT = 64;
const LIMITS: QuotaLimits = { dailyRequests: null, dailyTokens: null, monthlyRequests: null, monthlyTokens: null };

const say = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (since: number) => (performance.now() - since) / 1000;

async function fillLedger(db: PgSqlClient, users: (i: string) => string, rows: number): Promise<void> {
  const month = quotaWindow(new Date()).month;
  // Spread over the days of the month so far, as a month of traffic would be.
  const days = Number(quotaWindow(new Date()).day.slice(8, 10));
  const chunk = 200_000;
  for (let done = 0; done < rows; done += chunk) {
    const n = Math.min(chunk, rows - done);
    await db.query(
      `WITH made AS (
         INSERT INTO inference_requests (request_id, user_id, model, prompt, params, estimated_tokens, quota_day, quota_month, status, published, total_tokens)
         SELECT gen_random_uuid(), ${users("i")}, 'm', 'p', '{}', 120, ($1 || '-' || lpad((1 + i % $2)::text, 2, '0'))::date, $1, 'completed', true, 10 + i % 50
         FROM generate_series($3::bigint, $4::bigint) AS i
         RETURNING request_id, user_id, quota_day, quota_month, total_tokens)
       INSERT INTO usage_ledger (request_id, user_id, quota_day, quota_month, prompt_tokens, completion_tokens, total_tokens)
       SELECT request_id, user_id, quota_day, quota_month, 1, total_tokens - 1, total_tokens FROM made`,
      [month, days, done, done + n - 1],
    );
    say(`  ledger: ${(done + n).toLocaleString("en-US")} of ${rows.toLocaleString("en-US")} rows`);
  }
  await db.query("ANALYZE usage_ledger");
  await db.query("ANALYZE inference_requests");
}

async function rebuildAll(quota: RedisQuotaStore, users: string[]): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < users.length; i = next++) {
        const reserved = await quota.reserve({ userId: users[i] as string, requestId: randomUUID(), tokens: 1, limits: LIMITS, now: new Date() });
        if (!reserved.ok) throw new Error("an unlimited reserve was refused");
      }
    }),
  );
  return seconds(started);
}

async function main(): Promise<void> {
  const schema = `bench_quota_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const db = new PgSqlClient({ connectionString: DATABASE_URL, schema, max: 10 });
  const redis = new Redis(REDIS_URL);
  const prefix = `${schema}:`;
  try {
    await migrate(db);
    const quota = new RedisQuotaStore({ redis, keyPrefix: prefix, ledger: new SqlQuotaLedger(db) });
    const spreadUsers = Array.from({ length: USERS }, (_, i) => `spread-${i}`);

    say(`filling a month of ${ROWS.toLocaleString("en-US")} ledger rows over ${USERS.toLocaleString("en-US")} users`);
    let started = performance.now();
    await fillLedger(db, (i) => `'spread-' || (${i} % ${USERS})`, ROWS);
    say(`  filled in ${seconds(started).toFixed(1)} s`);
    // Redis starts empty for these keys: every user's first admission rebuilds their counters.
    const spread = await rebuildAll(quota, spreadUsers);
    const sample = await quota.usage("spread-7", new Date());
    say(`  rebuilt ${USERS.toLocaleString("en-US")} users in ${spread.toFixed(2)} s (spread-7: ${sample.monthly.requests} requests this month)`);

    say(`filling ${ROWS.toLocaleString("en-US")} more rows for one user`);
    started = performance.now();
    await fillLedger(db, () => `'whale'`, ROWS);
    say(`  filled in ${seconds(started).toFixed(1)} s`);
    const whale = await rebuildAll(quota, ["whale"]);
    const whaleUsage = await quota.usage("whale", new Date());
    if (whaleUsage.monthly.requests !== ROWS + 1) throw new Error(`whale has ${whaleUsage.monthly.requests} requests, expected ${ROWS + 1}`);

    const rows = [
      ["1,000,000 rows over 10,000 users, all rebuilt (64 in flight)", spread],
      ["1,000,000 rows of one user", whale],
    ] as const;
    const lines = ["| ledger of the month | rebuild | target |", "|---|---:|---|"];
    for (const [what, s] of rows) lines.push(`| ${what} | ${s.toFixed(2)} s | < 10 s: ${s < 10 ? "met" : "NOT met"} |`);
    process.stdout.write(`${lines.join("\n")}\n`);
    if (process.env.BENCH_JSON) {
      const file = process.env.BENCH_JSON;
      const previous = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>) : {};
      writeFileSync(file, JSON.stringify({ ...previous, quota_rebuild_seconds_1m: spread, quota_rebuild_seconds_one_user_1m: whale }, null, 2));
    }
  } finally {
    let cursor = "0";
    do {
      const [nextCursor, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = nextCursor;
    } while (cursor !== "0");
    redis.disconnect();
    await db.close();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
}

await main();

/**
 * What must hold after a fault, read from the durable record and the quota store: every admitted
 * request finished exactly once, nothing lost or stuck, and counters = ledger = completed usage with
 * no reservation left open.
 */
import type { PgSqlClient } from "../../src/adapters/postgres/sql-client.js";
import type { RedisQuotaStore } from "../../src/adapters/redis/quota-store.js";
import { chargedOnFailure } from "../../src/errors.js";

export interface Verdict {
  admitted: number;
  completed: number;
  failedByCode: Record<string, number>;
  stuck: number;
  lost: number;
  countedTwice: number;
  invariants: Array<{ name: string; ok: boolean; detail: string }>;
  ok: boolean;
}

interface Row {
  request_id: string;
  status: string;
  error_code: string | null;
  total_tokens: number | null;
}

/** Waits (bounded) until every admitted request is finished, then checks the invariants for the user. */
export async function verify(
  db: PgSqlClient,
  quota: RedisQuotaStore,
  user: { userId: string; dailyRequestLimit: number | null },
  admitted: string[],
  drainTimeoutMs: number,
): Promise<Verdict> {
  const deadline = Date.now() + drainTimeoutMs;
  let rows: Row[] = [];
  for (;;) {
    rows = (
      await db.query<Row>({
        name: "chaos_rows",
        text: "SELECT request_id::text, status, error_code, total_tokens FROM inference_requests WHERE user_id = $1",
      }, [user.userId])
    ).rows;
    const open = rows.filter((r) => r.status === "queued" || r.status === "processing").length;
    if (open === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const byId = new Map(rows.map((r) => [r.request_id, r]));
  const finished = (r: Row | undefined) => r !== undefined && (r.status === "completed" || r.status === "failed");
  const failedByCode: Record<string, number> = {};
  for (const id of admitted) {
    const r = byId.get(id);
    if (r?.status === "failed") failedByCode[r.error_code ?? "?"] = (failedByCode[r.error_code ?? "?"] ?? 0) + 1;
  }
  const ledger = (
    await db.query<{ n: number; tokens: string | number; twice: number }>(
      {
        name: "chaos_ledger",
        text: `SELECT COUNT(*)::int AS n, COALESCE(SUM(total_tokens), 0)::bigint AS tokens,
                      (COUNT(*) - COUNT(DISTINCT request_id))::int AS twice
               FROM usage_ledger WHERE user_id = $1`,
      },
      [user.userId],
    )
  ).rows[0]!;
  const completedRows = rows.filter((r) => r.status === "completed");
  // Failures on the request's own input are charged: a ledger row with no tokens.
  const chargedFailures = rows.filter((r) => r.status === "failed" && chargedOnFailure(r.error_code ?? "")).length;
  const completedTokens = completedRows.reduce((sum, r) => sum + (r.total_tokens ?? 0), 0);
  const usage = await quota.usage(user.userId, new Date());
  const ledgerTokens = Number(ledger.tokens);
  const stillOpen = rows.filter((r) => !finished(r)).length;
  const invariants = [
    { name: "counters = ledger (requests)", ok: usage.daily.requests === ledger.n, detail: `${usage.daily.requests} vs ${ledger.n}` },
    { name: "counters = ledger (tokens)", ok: usage.daily.tokensUsed === ledgerTokens, detail: `${usage.daily.tokensUsed} vs ${ledgerTokens}` },
    { name: "ledger = completed usage", ok: ledgerTokens === completedTokens && ledger.n === completedRows.length + chargedFailures, detail: `${ledgerTokens} vs ${completedTokens}` },
    { name: "no reservation left open", ok: usage.daily.tokensReserved === 0 && stillOpen === 0, detail: `${usage.daily.tokensReserved} tokens, ${stillOpen} requests` },
    {
      name: "limit enforced",
      ok: user.dailyRequestLimit === null || usage.daily.requests <= user.dailyRequestLimit,
      detail: `${usage.daily.requests} of ${user.dailyRequestLimit ?? "∞"}`,
    },
  ];
  const lost = admitted.filter((id) => !byId.has(id)).length;
  const stuck = admitted.filter((id) => byId.has(id) && !finished(byId.get(id))).length;
  const countedTwice = ledger.twice + Math.max(0, usage.daily.requests - ledger.n);
  return {
    admitted: admitted.length,
    completed: admitted.filter((id) => byId.get(id)?.status === "completed").length,
    failedByCode,
    stuck,
    lost,
    countedTwice,
    invariants,
    ok: lost === 0 && stuck === 0 && countedTwice === 0 && invariants.every((i) => i.ok),
  };
}

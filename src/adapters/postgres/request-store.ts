/** RequestStore over PostgreSQL or PGlite (see sql-client.ts). */
import type {
  FinishInput,
  NewRequest,
  QuotaReplayEntry,
  RequestStatus,
  RequestStore,
  RequestView,
  StoredRequest,
} from "../../domain/ports.js";
import type { GenerationParams } from "../../domain/contracts.js";
import type { ErrorCode } from "../../errors.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

interface RequestRow {
  request_id: string;
  user_id: string;
  model: string;
  prompt: string;
  params: GenerationParams | string;
  estimated_tokens: number;
  quota_day: string;
  quota_month: string;
  status: RequestStatus;
  published: boolean;
  created_at: Date | string;
  started_at: Date | string | null;
  completed_at: Date | string | null;
  result: string | null;
  outputs: string[] | string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  error_code: string | null;
  error_message: string | null;
}

const asDate = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));
const asJson = <T>(value: T | string | null): T | null => (typeof value === "string" ? (JSON.parse(value) as T) : value);

function toStored(row: RequestRow): StoredRequest {
  return { ...toView(row), prompt: row.prompt, params: asJson(row.params) as GenerationParams };
}

function toView(row: Omit<RequestRow, "prompt" | "params">): RequestView {
  return {
    requestId: row.request_id,
    userId: row.user_id,
    model: row.model,
    estimatedTokens: Number(row.estimated_tokens),
    window: { day: String(row.quota_day), month: row.quota_month },
    createdAt: asDate(row.created_at) as Date,
    status: row.status,
    published: row.published,
    startedAt: asDate(row.started_at),
    completedAt: asDate(row.completed_at),
    outputText: row.result,
    outputs: asJson(row.outputs),
    usage:
      row.total_tokens === null
        ? null
        : {
            prompt_tokens: Number(row.prompt_tokens),
            completion_tokens: Number(row.completion_tokens),
            total_tokens: Number(row.total_tokens),
          },
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? "" },
  };
}

export class SqlRequestStore implements RequestStore {
  constructor(private readonly db: SqlClient) {}

  async insert(r: NewRequest): Promise<void> {
    await this.db.query(sql("insertRequest"), [
      r.requestId,
      r.userId,
      r.model,
      r.prompt,
      JSON.stringify(r.params),
      r.estimatedTokens,
      r.window.day,
      r.window.month,
      r.createdAt,
    ]);
  }

  async insertMany(requests: NewRequest[]): Promise<void> {
    if (requests.length === 0) return;
    if (requests.length === 1) return this.insert(requests[0] as NewRequest);
    const column = <V>(pick: (r: NewRequest) => V) => requests.map(pick);
    await this.db.query(sql("insertRequests"), [
      column((r) => r.requestId),
      column((r) => r.userId),
      column((r) => r.model),
      column((r) => r.prompt),
      column((r) => JSON.stringify(r.params)),
      column((r) => r.estimatedTokens),
      column((r) => r.window.day),
      column((r) => r.window.month),
      column((r) => r.createdAt),
    ]);
  }

  async deleteUnpublished(requestId: string): Promise<boolean> {
    return (await this.db.query(sql("deleteUnpublishedRequest"), [requestId])).rowCount > 0;
  }

  async markPublished(requestIds: string[]): Promise<void> {
    if (requestIds.length > 0) await this.db.query(sql("markPublished"), [requestIds]);
  }

  async markProcessing(requestId: string, at: Date, attempt: number): Promise<boolean> {
    const result = await this.db.query(sql("markProcessing"), [requestId, at, attempt]);
    return result.rowCount > 0;
  }

  async finish(input: FinishInput): Promise<{ changed: boolean }> {
    return this.db.transaction(async (tx) => {
      const updated = await tx.query<{ user_id: string; quota_day: string; quota_month: string }>(sql("finishRequest"), [
        input.requestId,
        input.status,
        input.at,
        input.outputText,
        input.outputs === null ? null : JSON.stringify(input.outputs),
        input.usage?.prompt_tokens ?? null,
        input.usage?.completion_tokens ?? null,
        input.usage?.total_tokens ?? null,
        input.error?.code ?? null,
        input.error?.message ?? null,
        input.attempt,
      ]);
      const row = updated.rows[0];
      if (!row) return { changed: false };
      if (input.status === "completed" && input.usage) {
        await tx.query(sql("insertLedger"), [
          input.requestId,
          row.user_id,
          String(row.quota_day),
          row.quota_month,
          input.usage.prompt_tokens,
          input.usage.completion_tokens,
          input.usage.total_tokens,
          input.at,
        ]);
      }
      return { changed: true };
    });
  }

  async get(requestId: string): Promise<StoredRequest | null> {
    const result = await this.db.query<RequestRow>(sql("getRequest"), [requestId]);
    const row = result.rows[0];
    return row ? toStored(row) : null;
  }

  async view(requestId: string): Promise<RequestView | null> {
    const result = await this.db.query<Omit<RequestRow, "prompt" | "params">>(sql("viewRequest"), [requestId]);
    const row = result.rows[0];
    return row ? toView(row) : null;
  }

  async viewMany(requestIds: string[]): Promise<RequestView[]> {
    if (requestIds.length === 0) return [];
    const result = await this.db.query<Omit<RequestRow, "prompt" | "params">>(sql("viewRequests"), [requestIds]);
    return result.rows.map(toView);
  }

  async republishUnpublished(
    olderThan: Date,
    limit: number,
    publish: (request: StoredRequest) => Promise<void>,
  ): Promise<number> {
    return this.db.transaction(async (tx) => {
      const rows = (await tx.query<RequestRow>(sql("claimUnpublished"), [olderThan, limit])).rows;
      const done: string[] = [];
      for (const row of rows) {
        await publish(toStored(row));
        done.push(row.request_id);
      }
      if (done.length > 0) await tx.query(sql("markPublished"), [done]);
      return done.length;
    });
  }

  async quotaReplay(month: string): Promise<{ settled: QuotaReplayEntry[]; open: QuotaReplayEntry[] }> {
    type Row = { request_id: string; user_id: string; quota_day: string; tokens: number };
    const entry = (r: Row): QuotaReplayEntry => ({ requestId: r.request_id, userId: r.user_id, day: String(r.quota_day), tokens: Number(r.tokens) });
    const settled = (await this.db.query<Row>(sql("replaySettled"), [month])).rows.map(entry);
    const open = (await this.db.query<Row>(sql("replayOpen"))).rows.map(entry);
    return { settled, open };
  }

  async unpublishOpen(): Promise<number> {
    return (await this.db.query(sql("unpublishOpen"))).rowCount;
  }

  async countOpen(): Promise<number> {
    return Number((await this.db.query<{ n: number }>(sql("countOpen"))).rows[0]?.n ?? 0);
  }

  async expireStale(
    olderThan: Date,
    limit: number,
    at: Date,
    release: (request: { requestId: string; userId: string }) => Promise<void>,
  ): Promise<Array<{ requestId: string; userId: string }>> {
    return this.db.transaction(async (tx) => {
      const rows = (await tx.query<{ request_id: string; user_id: string }>(sql("claimStale"), [olderThan, limit])).rows;
      for (const row of rows) {
        await release({ requestId: row.request_id, userId: row.user_id });
        await tx.query(sql("finishRequest"), [
          row.request_id,
          "failed",
          at,
          null,
          null,
          null,
          null,
          null,
          "timeout" satisfies ErrorCode,
          "the request did not finish in time; its reservation was released",
          0,
        ]);
      }
      return rows.map((r) => ({ requestId: r.request_id, userId: r.user_id }));
    });
  }

  async ping(): Promise<void> {
    await this.db.query("SELECT 1");
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

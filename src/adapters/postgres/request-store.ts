/** RequestStore over PostgreSQL or PGlite (see sql-client.ts). */
import type {
  FinishInput,
  NewRequest,
  FinishReason,
  QuotaReplayEntry,
  QuotaWindow,
  RequestApi,
  RequestPage,
  RequestStatus,
  RequestStore,
  RequestView,
  StoredRequest,
} from "../../domain/ports.js";
import type { ChatMessage } from "../../domain/contracts.js";
import { fromWire, toWire, type WireGenerationParams } from "../../domain/generation-params.js";
import { sql } from "./queries.js";
import type { SqlClient } from "./sql-client.js";

interface RequestRow {
  request_id: string;
  user_id: string;
  model: string;
  prompt: string;
  params: WireGenerationParams | string;
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
  api: RequestApi;
  api_options: Record<string, unknown> | string | null;
  messages?: ChatMessage[] | string | null;
  stream_tokens: boolean;
  finish_reason: FinishReason | null;
  idempotency_hash: string | null;
  deadline_at?: Date | string | null;
}

const asDate = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));
const asJson = <T>(value: T | string | null): T | null => (typeof value === "string" ? (JSON.parse(value) as T) : value);

function toStored(row: RequestRow): StoredRequest {
  return {
    ...toView(row),
    prompt: row.prompt,
    params: fromWire(asJson(row.params) as WireGenerationParams),
    messages: asJson(row.messages ?? null),
    deadlineAt: asDate(row.deadline_at ?? null),
  };
}

function toView(row: Omit<RequestRow, "prompt" | "params" | "messages">): RequestView {
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
    finishReason: row.finish_reason,
    api: row.api,
    apiOptions: asJson(row.api_options),
    streamTokens: row.stream_tokens,
    idempotencyHash: row.idempotency_hash,
  };
}

// The outbox (outbox.ts) claims whole requests and reads them the same way.
export { toStored, type RequestRow };

export class SqlRequestStore implements RequestStore {
  constructor(private readonly db: SqlClient) {}

  async insert(r: NewRequest): Promise<void> {
    const { inserted } = await this.insertMany([r]);
    if (!inserted.has(r.requestId)) throw new Error(`request ${r.requestId} is already stored`);
  }

  async insertMany(requests: NewRequest[]): Promise<{ inserted: Set<string> }> {
    if (requests.length === 0) return { inserted: new Set() };
    const column = <V>(pick: (r: NewRequest) => V) => requests.map(pick);
    const json = (value: unknown) => (value === undefined || value === null ? null : JSON.stringify(value));
    const result = await this.db.query<{ request_id: string }>(sql("insertRequests"), [
      column((r) => r.requestId),
      column((r) => r.userId),
      column((r) => r.model),
      column((r) => r.prompt),
      column((r) => JSON.stringify(toWire(r.params))),
      column((r) => r.estimatedTokens),
      column((r) => r.window.day),
      column((r) => r.window.month),
      column((r) => r.createdAt),
      column((r) => r.api ?? "inference"),
      column((r) => json(r.apiOptions)),
      column((r) => json(r.messages)),
      column((r) => r.streamTokens === true),
      column((r) => r.idempotencyHash ?? null),
      column((r) => r.deadlineAt ?? null),
    ]);
    // Ids answered as the caller spelled them (PostgreSQL answers a uuid in lower case).
    const spelled = new Map(requests.map((r) => [r.requestId.toLowerCase(), r.requestId]));
    return { inserted: new Set(result.rows.map((row) => spelled.get(row.request_id) ?? row.request_id)) };
  }

  async finish(input: FinishInput): Promise<{ changed: boolean }> {
    const { changed } = await this.finishMany([input]);
    return { changed: changed.has(input.requestId) };
  }

  async finishMany(inputs: FinishInput[]): Promise<{ changed: Map<string, QuotaWindow> }> {
    // One outcome per id (the statement would otherwise pick one of them at random), and ids answered
    // as the caller spelled them (PostgreSQL answers a uuid in lower case).
    const spelled = new Map<string, string>();
    const outcomes = inputs.filter((input) => {
      const key = input.requestId.toLowerCase();
      if (spelled.has(key)) return false;
      spelled.set(key, input.requestId);
      return true;
    });
    if (outcomes.length === 0) return { changed: new Map() };
    const column = <V>(pick: (input: FinishInput) => V) => outcomes.map(pick);
    const result = await this.db.query<{ request_id: string; quota_day: string; quota_month: string }>(sql("finishRequests"), [
      column((o) => o.requestId),
      column((o) => o.status),
      column((o) => o.at),
      column((o) => o.outputText),
      column((o) => (o.outputs === null ? null : JSON.stringify(o.outputs))),
      column((o) => o.usage?.prompt_tokens ?? null),
      column((o) => o.usage?.completion_tokens ?? null),
      column((o) => o.usage?.total_tokens ?? null),
      column((o) => o.error?.code ?? null),
      column((o) => o.error?.message ?? null),
      column((o) => o.attempt),
      column((o) => o.startedAt ?? null),
      column((o) => o.status === "failed" && o.charged === true),
      column((o) => o.finishReason ?? null),
    ]);
    return {
      changed: new Map(
        result.rows.map((row) => [spelled.get(row.request_id) ?? row.request_id, { day: String(row.quota_day), month: row.quota_month }]),
      ),
    };
  }

  async get(requestId: string): Promise<StoredRequest | null> {
    const result = await this.db.query<RequestRow>(sql("getRequest"), [requestId]);
    const row = result.rows[0];
    return row ? toStored(row) : null;
  }

  async view(requestId: string): Promise<RequestView | null> {
    const result = await this.db.query<Omit<RequestRow, "prompt" | "params" | "messages">>(sql("viewRequest"), [requestId]);
    const row = result.rows[0];
    return row ? toView(row) : null;
  }

  async viewMany(requestIds: string[]): Promise<RequestView[]> {
    if (requestIds.length === 0) return [];
    const result = await this.db.query<Omit<RequestRow, "prompt" | "params" | "messages">>(sql("viewRequests"), [requestIds]);
    return result.rows.map(toView);
  }

  async listByUser(userId: string, page: RequestPage): Promise<RequestView[]> {
    const result = await this.db.query<Omit<RequestRow, "prompt" | "params" | "messages">>(sql("listUserRequests"), [
      userId,
      page.status ?? null,
      page.limit,
      page.after?.createdAt ?? null,
      page.after?.requestId ?? null,
    ]);
    return result.rows.map(toView);
  }

  async quotaReplay(month: string): Promise<{ settled: QuotaReplayEntry[]; open: QuotaReplayEntry[] }> {
    type Row = { request_id: string; user_id: string; quota_day: string; tokens: number };
    const entry = (r: Row): QuotaReplayEntry => ({ requestId: r.request_id, userId: r.user_id, day: String(r.quota_day), tokens: Number(r.tokens) });
    const settled = (await this.db.query<Row>(sql("replaySettled"), [month])).rows.map(entry);
    const open = (await this.db.query<Row>(sql("replayOpen"))).rows.map(entry);
    return { settled, open };
  }

  async countOpen(): Promise<number> {
    return Number((await this.db.query<{ n: number }>(sql("countOpen"))).rows[0]?.n ?? 0);
  }


  async ping(): Promise<void> {
    await this.db.query("SELECT 1");
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

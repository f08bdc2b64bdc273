/** BatchStore over PostgreSQL or PGlite (see sql-client.ts); every statement is in queries.sql. */
import type { BatchLineError, BatchStatus, BatchStore, BatchStoreListener, ClaimedLine, DispatchedLine, FairShare, LineEnding, LineOutcome, NewBatch, NewBatchLine, NewFile, OutputLine, StoredBatch, StoredFile, ValidatingBatch } from "../../domain/batches.js";
import { sql } from "./queries.js";
import type { SqlClient, SqlExecutor } from "./sql-client.js";

type Row = Record<string, unknown>;
const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(v as string));
const json = <T>(v: unknown): T | null => (v === null || v === undefined ? null : typeof v === "string" ? (JSON.parse(v) as T) : (v as T));
const FINAL_STATUSES: ReadonlySet<BatchStatus> = new Set(["completed", "failed", "expired", "cancelled"]);
const toJson = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

function toFile(r: Row): StoredFile {
  return { fileId: r.file_id as string, purpose: r.purpose as string, filename: r.filename as string, bytes: Number(r.bytes), createdAt: date(r.created_at) as Date, expiresAt: date(r.expires_at) };
}

function toBatch(r: Row): StoredBatch {
  return {
    batchId: r.batch_id as string,
    userId: r.user_id as string,
    endpoint: r.endpoint as string,
    inputFileId: r.input_file_id as string,
    completionWindow: r.completion_window as string,
    metadata: json<Record<string, string>>(r.metadata),
    status: r.status as BatchStatus,
    errors: json<BatchLineError[]>(r.errors),
    outputFileId: (r.output_file_id as string | null) ?? null,
    errorFileId: (r.error_file_id as string | null) ?? null,
    createdAt: date(r.created_at) as Date,
    expiresAt: date(r.expires_at) as Date,
    inProgressAt: date(r.in_progress_at),
    finalizingAt: date(r.finalizing_at),
    completedAt: date(r.completed_at),
    failedAt: date(r.failed_at),
    expiredAt: date(r.expired_at),
    cancellingAt: date(r.cancelling_at),
    cancelledAt: date(r.cancelled_at),
    counts: { total: Number(r.total ?? 0), completed: Number(r.completed ?? 0), failed: Number(r.failed ?? 0) },
    model: (r.model as string | null) ?? null,
    usage: usageOf(json<{ input_tokens: number; output_tokens: number; total_tokens: number }>(r.usage)),
  };
}

const usageOf = (u: { input_tokens: number; output_tokens: number; total_tokens: number } | null): StoredBatch["usage"] =>
  u ? { inputTokens: Number(u.input_tokens), outputTokens: Number(u.output_tokens), totalTokens: Number(u.total_tokens) } : null;

const insertFile = (db: SqlExecutor, f: NewFile) =>
  db.query(sql("insertBatchFile"), [f.fileId, f.userId, f.purpose, f.filename, f.content.length, f.content, f.createdAt, f.expiresAt ?? null]);
/** An output or error file expires as its batch says (`output_expires_after`, or the default it was created with). */
export class SqlBatchStore implements BatchStore {
  private readonly listeners = new Set<BatchStoreListener>();

  constructor(private readonly db: SqlClient) {}

  listen(listener: BatchStoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** After the change is committed; a listener that throws changes nothing here. */
  private ended(ending: LineEnding, count: number): void {
    if (count <= 0) return;
    for (const l of this.listeners) {
      try {
        l.linesEnded(ending, count);
      } catch {
        // metrics only
      }
    }
  }

  private finished(status: BatchStatus): void {
    // A step on the way (finalizing, cancelling) is not an end.
    if (!FINAL_STATUSES.has(status)) return;
    for (const l of this.listeners) {
      try {
        l.batchFinished(status);
      } catch {
        // metrics only
      }
    }
  }

  async pendingLinesByModel(): Promise<Map<string, number>> {
    const { rows } = await this.db.query<{ model: string; n: number }>(sql("pendingBatchLinesByModel"));
    return new Map(rows.map((r) => [r.model, Number(r.n)]));
  }

  /** Replicas claim, and end lines, one at a time (PGlite has one connection: its transactions already do). */
  private underFairShareLock<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      if (this.db.kind === "pg") await tx.query(sql("lockFairShare"));
      return work(tx);
    });
  }

  async insertFile(file: NewFile): Promise<void> {
    await insertFile(this.db, file);
  }

  async getFile(fileId: string, userId: string, now: Date): Promise<StoredFile | null> {
    const { rows } = await this.db.query<Row>(sql("getBatchFile"), [fileId, userId, now]);
    return rows[0] ? toFile(rows[0]) : null;
  }

  async fileContent(fileId: string, userId: string, now: Date): Promise<Buffer | null> {
    const { rows } = await this.db.query<{ content: Uint8Array }>(sql("getBatchFileContent"), [fileId, userId, now]);
    // pg answers a Buffer, PGlite a Uint8Array.
    return rows[0] ? Buffer.from(rows[0].content) : null;
  }

  async listFiles(userId: string, o: { purpose?: string; after?: string; limit: number; now: Date }): Promise<StoredFile[]> {
    const { rows } = await this.db.query<Row>(sql("listBatchFiles"), [userId, o.purpose ?? null, o.after ?? null, o.limit, o.now]);
    return rows.map(toFile);
  }

  async deleteFile(fileId: string, userId: string, now: Date): Promise<boolean> {
    return (await this.db.query(sql("deleteBatchFile"), [fileId, userId, now])).rowCount > 0;
  }

  async deleteExpiredFiles(now: Date, limit: number): Promise<number> {
    return (await this.db.query(sql("deleteExpiredBatchFiles"), [now, limit])).rowCount;
  }

  async insertBatch(b: NewBatch): Promise<void> {
    await this.db.query(sql("insertBatch"), [
      b.batchId, b.userId, b.endpoint, b.inputFileId, b.completionWindow, toJson(b.metadata), b.createdAt, b.expiresAt, b.outputExpiresAfterSeconds ?? null,
    ]);
  }

  async claimValidations(now: Date, until: Date, limit: number): Promise<ValidatingBatch[]> {
    const { rows } = await this.db.query<Row>(sql("claimValidatingBatches"), [now, until, limit]);
    return rows.map((r) => ({ batchId: r.batch_id as string, userId: r.user_id as string, endpoint: r.endpoint as string, inputFileId: r.input_file_id as string }));
  }

  async startBatch(batchId: string, lines: NewBatchLine[], at: Date): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // The guard first: of two replicas validating one batch, the second finds it started and inserts nothing.
      const { rows } = await tx.query<{ user_id: string }>(sql("startValidatedBatch"), [batchId, at]);
      const userId = rows[0]?.user_id;
      if (userId === undefined) return false;
      await tx.query(sql("insertBatchLines"), [
        batchId, lines.map((l) => l.line), lines.map((l) => l.customId), lines.map((l) => JSON.stringify(l.body)),
        lines.map((l) => l.model), lines.map((l) => l.cost),
      ]);
      await tx.query(sql("insertFairShareTenant"), [userId]);
      return true;
    });
  }

  async failBatch(batchId: string, errors: BatchLineError[], at: Date): Promise<boolean> {
    const failed = (await this.db.query(sql("failValidatedBatch"), [batchId, at, toJson(errors)])).rowCount > 0;
    if (failed) this.finished("failed");
    return failed;
  }

  async getBatch(batchId: string, userId: string): Promise<StoredBatch | null> {
    const { rows } = await this.db.query<Row>(sql("getBatch"), [batchId, userId]);
    return rows[0] ? toBatch(rows[0]) : null;
  }

  async listBatches(userId: string, o: { after?: string; limit: number }): Promise<StoredBatch[]> {
    const { rows } = await this.db.query<Row>(sql("listBatches"), [userId, o.after ?? null, o.limit]);
    return rows.map(toBatch);
  }

  async cancelBatch(batchId: string, userId: string, at: Date): Promise<boolean> {
    return (await this.db.query(sql("cancelBatch"), [batchId, userId, at])).rowCount > 0;
  }

  async claimLines(now: Date, until: Date, slotsPerModel: number, ended: LineOutcome[] = []): Promise<ClaimedLine[]> {
    // One transaction (one lock) for both: a pass's two writes cost three statements fewer.
    let counted = { completed: 0, failed: 0 };
    const { rows } = await this.underFairShareLock(async (tx) => {
      if (ended.length > 0) {
        const finished = await tx.query<{ completed: number; failed: number }>(sql("finishBatchLines"), [
          ended.map((o) => o.batchId), ended.map((o) => o.line), ended.map((o) => o.ok),
          ended.map((o) => toJson(o.response)), ended.map((o) => toJson(o.error)), ended.map((o) => o.tokens), ended.map((o) => o.requestId),
        ]);
        counted = { completed: Number(finished.rows[0]?.completed ?? 0), failed: Number(finished.rows[0]?.failed ?? 0) };
      }
      return tx.query<Row>(sql("claimBatchLines"), [now, until, slotsPerModel]);
    });
    // Counted once committed: a line two replicas saw end is changed (and counted) by one of them.
    this.ended("completed", counted.completed);
    this.ended("failed", counted.failed);
    return rows.map((r) => ({ batchId: r.batch_id as string, line: Number(r.line), customId: r.custom_id as string, body: json(r.body), userId: r.user_id as string, endpoint: r.endpoint as string }));
  }

  async deferLine(batchId: string, line: number, notBefore: Date, lastError: { code: string; message: string }): Promise<void> {
    await this.db.query(sql("deferBatchLine"), [batchId, line, notBefore, JSON.stringify(lastError)]);
  }

  async refuseLine(batchId: string, line: number, response: OutputLine["response"], error: OutputLine["error"]): Promise<void> {
    const { rows } = await this.db.query<{ refused: number }>(sql("refuseBatchLine"), [batchId, line, toJson(response), toJson(error)]);
    this.ended("refused", Number(rows[0]?.refused ?? 0));
  }

  async dispatchedLines(limit: number): Promise<DispatchedLine[]> {
    const { rows } = await this.db.query<Row>(sql("dispatchedBatchLines"), [limit]);
    return rows.map((r) => ({ batchId: r.batch_id as string, line: Number(r.line), userId: r.user_id as string, leasedUntil: date(r.claimed_until) }));
  }

  async releaseLines(lines: Array<{ batchId: string; line: number }>, now: Date): Promise<void> {
    if (lines.length === 0) return;
    await this.db.query(sql("releaseBatchLines"), [lines.map((l) => l.batchId), lines.map((l) => l.line), now]);
  }

  async closeLines(now: Date): Promise<number> {
    const { rows } = await this.db.query<{ closed_by: string }>(sql("closeBatchLines"), [now]);
    for (const ending of ["cancelled", "expired"] as const) this.ended(ending, rows.filter((r) => r.closed_by === ending).length);
    return rows.length;
  }

  async finishableBatches(limit: number) {
    const { rows } = await this.db.query<Row>(sql("finishableBatches"), [limit]);
    return rows.map((r) => ({ batchId: r.batch_id as string, userId: r.user_id as string, status: r.status as BatchStatus, expired: r.expired === true }));
  }

  async finalizeBatch(batchId: string, at: Date): Promise<boolean> {
    return (await this.db.query(sql("finalizeBatch"), [batchId, at])).rowCount > 0;
  }

  async finishBatch(input: { batchId: string; from: BatchStatus; to: BatchStatus; at: Date; outputFileId: string; errorFileId: string }): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(sql("finishBatch"), [input.batchId, input.from, input.to, input.at]);
      if (rowCount === 0) return false;
      // Written by the database from the lines where they are: a large batch's files never pass through here.
      const write = async (fileId: string, kind: "output" | "error", ok: boolean) =>
        (await tx.query(sql("writeBatchOutputFile"), [input.batchId, fileId, `${input.batchId}_${kind}.jsonl`, input.at, ok])).rowCount > 0 ? fileId : null;
      const output = await write(input.outputFileId, "output", true);
      const errors = await write(input.errorFileId, "error", false);
      await tx.query(sql("setBatchFiles"), [input.batchId, output, errors]);
      return true;
    }).then((done) => {
      if (done) this.finished(input.to);
      return done;
    });
  }

  async setTierWeight(tier: string, weight: number): Promise<boolean> {
    return (await this.db.query(sql("setTierWeight"), [tier, weight])).rowCount > 0;
  }

  async tierWeights(): Promise<Map<string, number>> {
    const { rows } = await this.db.query<Row>(sql("tierWeights"));
    return new Map(rows.map((r) => [r.name as string, Number(r.weight)]));
  }

  async fairShares(): Promise<FairShare[]> {
    const { rows } = await this.db.query<Row>(sql("fairShares"));
    return rows.map((r) => ({ userId: r.user_id as string, finishTag: Number(r.finish_tag), servedTokens: Number(r.served_tokens) }));
  }
}

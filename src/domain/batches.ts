/**
 * The Batch API's records and the store the gateway keeps them in (PostgreSQL or PGlite). A batch is
 * stored `validating` when it is created; a dispatcher then validates its input file and copies its
 * lines out of it (the batch goes `in_progress`), or fails it. Each line then runs as one ordinary
 * request (admitted like any other) and its outcome is kept with the line until the batch's output
 * and error files are written.
 */

export type BatchEndpoint = "/v1/chat/completions" | "/v1/completions" | "/v1/responses";
export const BATCH_ENDPOINTS: readonly BatchEndpoint[] = ["/v1/chat/completions", "/v1/completions", "/v1/responses"];

export type BatchStatus = "validating" | "failed" | "in_progress" | "finalizing" | "completed" | "expired" | "cancelling" | "cancelled";

export interface StoredFile {
  fileId: string;
  purpose: string;
  filename: string;
  bytes: number;
  createdAt: Date;
  /** When it stops being found (and is deleted soon after); null: it lasts until it is deleted. */
  expiresAt: Date | null;
}

/** OpenAI's bounds on `expires_after[seconds]` (files) and `output_expires_after.seconds` (batches): 1 hour to 30 days. */
export const FILE_EXPIRY_MIN_SECONDS = 3_600;
export const FILE_EXPIRY_MAX_SECONDS = 2_592_000;

/** OpenAI's BatchError: what is wrong, on which line (1-based) and in which field. */
export interface BatchLineError {
  code: string;
  line: number | null;
  message: string;
  param: string | null;
}

export interface StoredBatch {
  batchId: string;
  userId: string;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  status: BatchStatus;
  errors: BatchLineError[] | null;
  outputFileId: string | null;
  errorFileId: string | null;
  createdAt: Date;
  expiresAt: Date;
  inProgressAt: Date | null;
  finalizingAt: Date | null;
  completedAt: Date | null;
  failedAt: Date | null;
  expiredAt: Date | null;
  cancellingAt: Date | null;
  cancelledAt: Date | null;
  counts: { total: number; completed: number; failed: number };
  /** The model its lines run on (its first line's). */
  model: string | null;
  /** Tokens its lines' requests used, summed when it finished; null before. */
  usage: { inputTokens: number; outputTokens: number; totalTokens: number } | null;
}

export interface NewBatch {
  batchId: string;
  userId: string;
  endpoint: string;
  inputFileId: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  createdAt: Date;
  expiresAt: Date;
  /** How long its output and error files last after they are written; absent or null: for ever. */
  outputExpiresAfterSeconds?: number | null;
}

/** A validating batch leased to one dispatcher, with what validating it needs. */
export interface ValidatingBatch {
  batchId: string;
  userId: string;
  endpoint: string;
  inputFileId: string;
}

export interface NewBatchLine {
  line: number;
  customId: string;
  body: unknown;
  /** The model it runs on: the scheduler's slots are per model. */
  model: string;
  /** Its estimated tokens (fair-share.ts), charged to its tenant when it is claimed. */
  cost: number;
}

/** A line claimed for dispatch, with what admitting it needs. */
export interface ClaimedLine {
  batchId: string;
  line: number;
  customId: string;
  body: unknown;
  userId: string;
  endpoint: string;
}

/** One line of the output or error file, as OpenAI writes it. */
export interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

/**
 * A line dispatched: its request's id is derived from its owner and place (the admission's
 * Idempotency-Key). `leasedUntil`: how long its admission may take; a line whose lease ran out with
 * no request stored was never admitted.
 */
export interface DispatchedLine {
  batchId: string;
  line: number;
  userId: string;
  leasedUntil: Date | null;
}

export interface LineOutcome {
  batchId: string;
  line: number;
  /** The request that ran it. */
  requestId: string;
  ok: boolean;
  response: OutputLine["response"];
  error: OutputLine["error"];
  /** The tokens its request really used (0 when it used none): its tenant's fair share is charged them. */
  tokens: number;
}

/** A tenant's standing in the fair share (README "Batch scheduling"). */
export interface FairShare {
  userId: string;
  /** Virtual tokens (tokens / weight) of its lines claimed so far: estimates in flight, real counts once ended. */
  finishTag: number;
  /** Real tokens of its lines that ended. */
  servedTokens: number;
}

export interface NewFile {
  fileId: string;
  userId: string;
  purpose: string;
  filename: string;
  content: Buffer;
  createdAt: Date;
  /** Absent or null: it never expires. (Output files written by finishBatch expire as their batch says.) */
  expiresAt?: Date | null;
}

/** How a line ended: its request completed or failed, refused at admission, or never ran (batch cancelled, window over). */
export type LineEnding = "completed" | "failed" | "refused" | "cancelled" | "expired";

/** Told what the store really changed (a line ended by another replica first is not told twice): for metrics. */
export interface BatchStoreListener {
  linesEnded(ending: LineEnding, count: number): void;
  batchFinished(status: BatchStatus): void;
}

export interface BatchStore {
  /** Adds a listener until the function it returns is called. */
  listen(listener: BatchStoreListener): () => void;
  /** Lines not yet dispatched (pending) per model: the batch backlog. */
  pendingLinesByModel(): Promise<Map<string, number>>;

  insertFile(file: NewFile): Promise<void>;
  /** Someone else's file is null, like a missing one; so is a file expired by `now`. */
  getFile(fileId: string, userId: string, now: Date): Promise<StoredFile | null>;
  fileContent(fileId: string, userId: string, now: Date): Promise<Buffer | null>;
  listFiles(userId: string, options: { purpose?: string; after?: string; limit: number; now: Date }): Promise<StoredFile[]>;
  deleteFile(fileId: string, userId: string, now: Date): Promise<boolean>;
  /** Deletes at most `limit` files expired by `now` (one statement); how many it deleted. */
  deleteExpiredFiles(now: Date, limit: number): Promise<number>;

  /** Stored `validating`: nothing read from its input file yet, no lines, nothing reserved. */
  insertBatch(batch: NewBatch): Promise<void>;
  getBatch(batchId: string, userId: string): Promise<StoredBatch | null>;
  listBatches(userId: string, options: { after?: string; limit: number }): Promise<StoredBatch[]>;
  /** Validating or running → cancelling; false when the batch was neither (finished, or not this user's). */
  cancelBatch(batchId: string, userId: string, at: Date): Promise<boolean>;

  // Validation (the dispatcher's first step for a new batch).
  /**
   * Leases at most `limit` validating batches until `until` (one statement): no other replica takes
   * them meanwhile; one whose lease ran out by `now` (its validator died) is taken again.
   */
  claimValidations(now: Date, until: Date, limit: number): Promise<ValidatingBatch[]>;
  /**
   * Validating → in progress with these lines, in one transaction, only if it was still validating
   * (cancelled meanwhile, or started by another replica: false, and no line is inserted).
   */
  startBatch(batchId: string, lines: NewBatchLine[], at: Date): Promise<boolean>;
  /** Validating → failed with these errors (no lines, nothing reserved); false when it was not validating. */
  failBatch(batchId: string, errors: BatchLineError[], at: Date): Promise<boolean>;

  // The dispatcher's side. Each is one short statement: nothing is held open across an admission.
  /**
   * Dispatches pending lines of running batches (window not over, not waiting), their admissions
   * leased until `until`, in fair order between tenants (by tokens, weighted by tier), so that no
   * model has more than `slotsPerModel` lines dispatched and unfinished, over all replicas. Returned in the order
   * they should be admitted. First, in the same transaction, the outcomes of lines that `ended` are
   * kept with them and their real tokens charged to their tenants' fair share (which frees their slots).
   */
  claimLines(now: Date, until: Date, slotsPerModel: number, ended?: LineOutcome[]): Promise<ClaimedLine[]>;
  deferLine(batchId: string, line: number, notBefore: Date, lastError: { code: string; message: string }): Promise<void>;
  refuseLine(batchId: string, line: number, response: OutputLine["response"], error: OutputLine["error"]): Promise<void>;
  dispatchedLines(limit: number): Promise<DispatchedLine[]>;
  /** Dispatched lines never admitted (no request) whose leases ran out by `now`: pending again. */
  releaseLines(lines: Array<{ batchId: string; line: number }>, now: Date): Promise<void>;
  /** Lines that will never run (cancelled batch, window over) are done, in the error file. */
  closeLines(now: Date): Promise<number>;
  finishableBatches(limit: number): Promise<Array<{ batchId: string; userId: string; status: BatchStatus; expired: boolean }>>;
  /** In progress → finalizing (its files are being written); false when it was not in progress. */
  finalizeBatch(batchId: string, at: Date): Promise<boolean>;
  /**
   * In one transaction: the batch goes from `from` to `to` with its output file (its completed
   * lines) and error file (the rest), written under these ids when any line belongs in them, only if
   * it was still `from` (another replica finishing it too writes nothing). False when it was not.
   * The files expire as the batch was created to (`outputExpiresAfterSeconds`).
   */
  finishBatch(input: { batchId: string; from: BatchStatus; to: BatchStatus; at: Date; outputFileId: string; errorFileId: string }): Promise<boolean>;

  // Fair share between tenants.
  /** False when there is no such tier. */
  setTierWeight(tier: string, weight: number): Promise<boolean>;
  tierWeights(): Promise<Map<string, number>>;
  fairShares(): Promise<FairShare[]>;
}

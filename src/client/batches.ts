/**
 * The Batch API in the client (`client.batches`): upload a JSONL file, create a batch of it, read
 * it, list, cancel, wait until it is final (polling, with a progress callback), and read its output
 * and error files. The wire is OpenAI's (unix seconds, snake_case); the client's view is camelCase
 * with ISO times, like the rest of the client.
 */
import { ClientError } from "./errors.js";

export type BatchEndpoint = "/v1/chat/completions" | "/v1/completions" | "/v1/responses";
export type BatchState = "validating" | "failed" | "in_progress" | "finalizing" | "completed" | "expired" | "cancelling" | "cancelled";
export const FINAL_BATCH_STATES: ReadonlySet<string> = new Set<BatchState>(["completed", "failed", "expired", "cancelled"]);
export const DEFAULT_BATCH_ENDPOINT: BatchEndpoint = "/v1/chat/completions";

export interface BatchFile {
  id: string;
  bytes: number;
  filename: string;
  purpose: string;
  createdAt: string;
}

export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface Batch {
  id: string;
  status: BatchState;
  endpoint: string;
  inputFileId: string;
  /** The results, one JSONL line per input line that ran; set once the batch is final. */
  outputFileId: string | null;
  /** The lines that failed, in the same format; set when some did. */
  errorFileId: string | null;
  requestCounts: RequestCounts;
  /** Why a batch failed validation, a line each (nothing of it ran). */
  errors: Array<{ code: string; message: string; line: number | null }> | null;
  metadata: Record<string, string> | null;
  createdAt: string;
  completedAt: string | null;
}

export interface BatchPage {
  data: Batch[];
  hasMore: boolean;
  lastId: string | null;
}

export interface CreateBatchOptions {
  endpoint?: BatchEndpoint;
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

export interface BatchWaitOptions {
  /** Give up (ClientError `wait_timeout`) after this long; the batch itself goes on. */
  timeoutMs?: number;
  /** How often the batch is read (default 1 s). */
  pollMs?: number;
  signal?: AbortSignal;
  /** Called with the batch each time it is read and its status or counts moved. */
  onProgress?: (batch: Batch) => void;
}

/** What BatchesApi needs of the Client: its authenticated exchanges. */
export interface BatchTransport {
  json(path: string, init: { method?: "GET" | "POST"; body?: unknown; form?: FormData; signal?: AbortSignal | undefined }): Promise<{ body: Wire }>;
  text(path: string, init: { signal?: AbortSignal | undefined }): Promise<string>;
  sleep(ms: number, signal: AbortSignal | undefined): Promise<void>;
}

type Wire = Record<string, any>;

const iso = (seconds: unknown): string | null => (typeof seconds === "number" ? new Date(seconds * 1000).toISOString() : null);

export function fileFrom(w: Wire): BatchFile {
  return { id: w.id, bytes: w.bytes, filename: w.filename, purpose: w.purpose, createdAt: iso(w.created_at) ?? "" };
}

export function batchFrom(w: Wire): Batch {
  const counts = w.request_counts ?? {};
  return {
    id: w.id,
    status: w.status,
    endpoint: w.endpoint,
    inputFileId: w.input_file_id,
    outputFileId: w.output_file_id ?? null,
    errorFileId: w.error_file_id ?? null,
    requestCounts: { total: counts.total ?? 0, completed: counts.completed ?? 0, failed: counts.failed ?? 0 },
    errors: Array.isArray(w.errors?.data) ? w.errors.data.map((e: Wire) => ({ code: e.code, message: e.message, line: e.line ?? null })) : null,
    metadata: w.metadata ?? null,
    createdAt: iso(w.created_at) ?? "",
    completedAt: iso(w.completed_at ?? w.failed_at ?? w.expired_at ?? w.cancelled_at),
  };
}

const POLL_MS = 1_000;
const id = (value: string) => encodeURIComponent(value);

export class BatchesApi {
  constructor(private readonly transport: BatchTransport) {}

  /** POST /v1/files (purpose=batch): the JSONL lines `{custom_id, method, url, body}`. */
  async uploadFile(content: string | Uint8Array | Blob, options: { filename?: string; signal?: AbortSignal } = {}): Promise<BatchFile> {
    const form = new FormData();
    form.set("purpose", "batch");
    const blob = content instanceof Blob ? content : new Blob([content as BlobPart], { type: "application/jsonl" });
    form.set("file", blob, options.filename ?? "batch.jsonl");
    const { body } = await this.transport.json("/v1/files", { method: "POST", form, signal: options.signal });
    return fileFrom(body);
  }

  /** POST /v1/batches for an uploaded file. A file with a bad line gives a `failed` batch (see `errors`), not a throw. */
  async create(inputFileId: string, options: CreateBatchOptions = {}): Promise<Batch> {
    const body = { input_file_id: inputFileId, endpoint: options.endpoint ?? DEFAULT_BATCH_ENDPOINT, completion_window: "24h", ...(options.metadata ? { metadata: options.metadata } : {}) };
    return batchFrom((await this.transport.json("/v1/batches", { method: "POST", body, signal: options.signal })).body);
  }

  /** Upload then create, in one call. */
  async submit(content: string | Uint8Array | Blob, options: CreateBatchOptions & { filename?: string } = {}): Promise<Batch> {
    const file = await this.uploadFile(content, { ...(options.filename ? { filename: options.filename } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    return this.create(file.id, options);
  }

  async retrieve(batchId: string, options: { signal?: AbortSignal } = {}): Promise<Batch> {
    return batchFrom((await this.transport.json(`/v1/batches/${id(batchId)}`, { signal: options.signal })).body);
  }

  /** One page of the caller's batches, newest first. */
  async list(options: { limit?: number; after?: string; signal?: AbortSignal } = {}): Promise<BatchPage> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    if (options.after !== undefined) query.set("after", options.after);
    const { body } = await this.transport.json(`/v1/batches${query.size > 0 ? `?${query}` : ""}`, { signal: options.signal });
    return { data: (body.data as Wire[]).map(batchFrom), hasMore: body.has_more === true, lastId: body.last_id ?? null };
  }

  /** Lines running finish; the rest never run. A final batch is answered as it is. */
  async cancel(batchId: string): Promise<Batch> {
    return batchFrom((await this.transport.json(`/v1/batches/${id(batchId)}/cancel`, { method: "POST" })).body);
  }

  /** The batch once it is final (completed, failed, expired or cancelled: a status, not a throw). */
  async wait(batchId: string, options: BatchWaitOptions = {}): Promise<Batch> {
    const deadline = new AbortController();
    const timer = options.timeoutMs !== undefined ? setTimeout(() => deadline.abort(), options.timeoutMs) : undefined;
    const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
    let seen = "";
    try {
      for (;;) {
        const batch = await this.retrieve(batchId, { signal });
        const progress = `${batch.status} ${batch.requestCounts.completed} ${batch.requestCounts.failed} ${batch.requestCounts.total}`;
        if (progress !== seen) options.onProgress?.(batch);
        seen = progress;
        if (FINAL_BATCH_STATES.has(batch.status)) return batch;
        await this.transport.sleep(options.pollMs ?? POLL_MS, signal);
      }
    } catch (error) {
      if (deadline.signal.aborted && !options.signal?.aborted) {
        throw new ClientError("wait_timeout", `batch ${batchId} did not finish within ${options.timeoutMs} ms`, { cause: error });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** GET /v1/files/{id}/content: a file's JSONL text. */
  content(fileId: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    return this.transport.text(`/v1/files/${id(fileId)}/content`, { signal: options.signal });
  }

  /** The batch's output (or, with `errors`, its error file) as text; null while it has none. */
  async output(batch: Batch | string, options: { errors?: boolean; signal?: AbortSignal } = {}): Promise<string | null> {
    const current = typeof batch === "string" ? await this.retrieve(batch, options.signal ? { signal: options.signal } : {}) : batch;
    const fileId = options.errors ? current.errorFileId : current.outputFileId;
    return fileId ? this.content(fileId, options.signal ? { signal: options.signal } : {}) : null;
  }
}

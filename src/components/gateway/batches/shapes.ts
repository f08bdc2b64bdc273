/** OpenAI's FileObject and Batch as the Batch API answers them, and the ids it hands out. */
import { randomBytes } from "node:crypto";
import type { Batch } from "openai/resources/batches";
import type { FileObject } from "openai/resources/files";
import type { StoredBatch, StoredFile } from "../../../domain/batches.js";

const seconds = (at: Date): number => Math.floor(at.getTime() / 1000);
const secondsOrNull = (at: Date | null): number | undefined => (at ? seconds(at) : undefined);

export const newFileId = (): string => `file-${randomBytes(12).toString("hex")}`;
export const newBatchId = (): string => `batch_${randomBytes(12).toString("hex")}`;
export function fileObject(f: StoredFile): FileObject {
  return {
    id: f.fileId,
    object: "file",
    bytes: f.bytes,
    created_at: seconds(f.createdAt),
    filename: f.filename,
    purpose: f.purpose as FileObject["purpose"],
    status: "processed",
    ...(f.expiresAt ? { expires_at: seconds(f.expiresAt) } : {}),
  };
}

export function batchObject(b: StoredBatch): Batch {
  const times = {
    in_progress_at: secondsOrNull(b.inProgressAt),
    finalizing_at: secondsOrNull(b.finalizingAt),
    completed_at: secondsOrNull(b.completedAt),
    failed_at: secondsOrNull(b.failedAt),
    expired_at: secondsOrNull(b.expiredAt),
    cancelling_at: secondsOrNull(b.cancellingAt),
    cancelled_at: secondsOrNull(b.cancelledAt),
  };
  return {
    id: b.batchId,
    object: "batch",
    endpoint: b.endpoint,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    created_at: seconds(b.createdAt),
    expires_at: seconds(b.expiresAt),
    ...Object.fromEntries(Object.entries(times).filter(([, v]) => v !== undefined)),
    ...(b.outputFileId ? { output_file_id: b.outputFileId } : {}),
    ...(b.errorFileId ? { error_file_id: b.errorFileId } : {}),
    ...(b.errors ? { errors: { object: "list", data: b.errors } } : {}),
    request_counts: b.counts,
    metadata: b.metadata,
    ...(b.model ? { model: b.model } : {}),
    ...(b.usage
      ? {
          usage: {
            input_tokens: b.usage.inputTokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: b.usage.outputTokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: b.usage.totalTokens,
          },
        }
      : {}),
  };
}

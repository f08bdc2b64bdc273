/**
 * Validates new batches: the first step of the dispatcher's full passes, and of the pass a batch's
 * creation asks for (so a new batch starts within milliseconds, not an interval later). A batch is
 * created `validating` (OpenAI's order: validating → in_progress, or failed); here its input file is
 * read and checked whole (lines.ts), then, in one transaction guarded by its status, its lines are
 * inserted and it is `in_progress`, or it is `failed` with `errors.data[]` and nothing reserved.
 *
 * Validating batches are claimed under a lease (BATCH_LEASE_MS), so two replicas never validate one
 * at once; a replica that dies mid-validation leaves the batch to the next once the lease runs out.
 * Should the first come back and finish anyway, the status guard makes its write nothing: a batch's
 * lines are inserted once. A batch cancelled while validating is never started (the same guard) and
 * ends `cancelled` with no lines.
 */
import type { BatchConfig, GatewayConfig } from "../../../config.js";
import type { BatchEndpoint, BatchLineError, BatchStore, ValidatingBatch } from "../../../domain/batches.js";
import type { Logger } from "../../../observability/logger.js";
import { validateBatchFile } from "./lines.js";

export interface BatchValidatorDeps {
  config: Pick<GatewayConfig, "maxLengthLimit" | "maxPromptChars" | "defaultModel"> & { batches: BatchConfig };
  log: Logger;
  store: BatchStore;
  models: readonly string[];
}

/** Batches validated per pass: checking a large file takes a while, and the pass's lines wait meanwhile. */
export const VALIDATIONS_PER_PASS = 4;

/** Claims and validates up to VALIDATIONS_PER_PASS batches; true when it claimed that many (more may be waiting). */
export async function validateNewBatches(deps: BatchValidatorDeps, now: () => Date): Promise<boolean> {
  const at = now();
  const claimed = await deps.store.claimValidations(at, new Date(at.getTime() + deps.config.batches.leaseMs), VALIDATIONS_PER_PASS);
  for (const batch of claimed) {
    try {
      await validate(deps, batch, now);
    } catch (error) {
      // A store failing: the lease runs out and this or another replica validates the batch again.
      deps.log.warn({ err: error, batch_id: batch.batchId }, "batch validation left to its lease");
    }
  }
  return claimed.length === VALIDATIONS_PER_PASS;
}

/** What errors.data[] says of a batch whose input file is gone (deleted, or expired) before it was validated. */
export function inputFileGone(fileId: string): BatchLineError {
  return { code: "file_not_found", line: null, message: `the input file ${fileId} was deleted or expired before the batch was validated`, param: "input_file_id" };
}

async function validate(deps: BatchValidatorDeps, batch: ValidatingBatch, now: () => Date): Promise<void> {
  const { config, store, log } = deps;
  const content = await store.fileContent(batch.inputFileId, batch.userId, now());
  // The limits are read per batch: they are the gateway's settings of the moment it is validated.
  const checked = content
    ? validateBatchFile(content, batch.endpoint as BatchEndpoint, {
        maxBytes: config.batches.fileMaxBytes,
        maxLines: config.batches.maxLines,
        body: { maxLength: config.maxLengthLimit, maxPromptChars: config.maxPromptChars, models: deps.models, defaultModel: config.defaultModel },
      })
    : { ok: false as const, errors: [inputFileGone(batch.inputFileId)] };
  const written = checked.ok ? await store.startBatch(batch.batchId, checked.lines, now()) : await store.failBatch(batch.batchId, checked.errors, now());
  const facts = { batch_id: batch.batchId, user_id: batch.userId, lines: checked.ok ? checked.lines.length : 0, valid: checked.ok };
  if (written) log.info(facts, checked.ok ? "batch validated and started" : "batch failed validation");
  else log.info(facts, "batch validated, but it was no longer validating (cancelled, or validated by another replica)");
}

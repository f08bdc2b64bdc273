-- A batch is stored `validating` when it is created, and its input file is validated later by a
-- gateway's dispatcher (OpenAI's order: validating → in_progress or failed). `validation_until`: the
-- lease of the replica validating it; a replica that dies mid-validation leaves the batch to the
-- next one once it runs out. Found by the partial index, so a pass costs nothing with none waiting.
ALTER TABLE batches ADD COLUMN validation_until timestamptz;
CREATE INDEX batches_validating ON batches (created_at) WHERE status = 'validating';
-- A batch now fails validation by an UPDATE (webhook_batch_finished sends its batch.failed), never
-- at its INSERT: the trigger for that is dropped.
DROP TRIGGER IF EXISTS webhook_batch_failed_at_creation ON batches;

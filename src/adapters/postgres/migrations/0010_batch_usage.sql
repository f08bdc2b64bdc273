-- A finished batch's token usage (OpenAI's Batch.usage): the sum over its lines' requests, written
-- when it finishes so that reading a batch never sums its lines.
ALTER TABLE batches ADD COLUMN usage jsonb;

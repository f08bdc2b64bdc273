-- Files expire (OpenAI's FileObject.expires_at): a file past its expires_at is not found, like a
-- missing one, from that moment on; the gateway's sweeper deletes it later (by this index).
-- A batch keeps how long its output and error files last (`output_expires_after`, else
-- BATCH_OUTPUT_FILE_TTL_S when it was created); null: they never expire.
ALTER TABLE batch_files ADD COLUMN expires_at timestamptz;
CREATE INDEX batch_files_expiring ON batch_files (expires_at) WHERE expires_at IS NOT NULL;
ALTER TABLE batches ADD COLUMN output_expires_after_seconds integer;

-- The OpenAI Batch API. Files hold their bytes (bounded by BATCH_FILE_MAX_BYTES). A batch copies its
-- input file's lines into batch_lines when it is created, so deleting the file later changes nothing.
-- `seq` orders lists and their `after` cursors (ids are random).
CREATE TABLE batch_files (
  file_id     text PRIMARY KEY,
  seq         bigserial NOT NULL,
  user_id     text NOT NULL,
  purpose     text NOT NULL,
  filename    text NOT NULL,
  bytes       integer NOT NULL,
  content     bytea NOT NULL,
  created_at  timestamptz NOT NULL
);
CREATE INDEX batch_files_by_user ON batch_files (user_id, seq DESC);

CREATE TABLE batches (
  batch_id           text PRIMARY KEY,
  seq                bigserial NOT NULL,
  user_id            text NOT NULL,
  endpoint           text NOT NULL,
  input_file_id      text NOT NULL,
  completion_window  text NOT NULL,
  metadata           jsonb,
  status             text NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled')),
  errors             jsonb,
  output_file_id     text,
  error_file_id      text,
  created_at         timestamptz NOT NULL,
  expires_at         timestamptz NOT NULL,
  in_progress_at     timestamptz,
  finalizing_at      timestamptz,
  completed_at       timestamptz,
  failed_at          timestamptz,
  expired_at         timestamptz,
  cancelling_at      timestamptz,
  cancelled_at       timestamptz
);
CREATE INDEX batches_by_user ON batches (user_id, seq DESC);
CREATE INDEX batches_open ON batches (created_at) WHERE status IN ('in_progress', 'cancelling');

-- One row per request line. pending → (claimed under a lease, admitted) dispatched → done, or
-- pending → done without running (cancelled, window over, refused at admission): `closed_by` says why.
-- `not_before` and `last_error`: a line the user's quota did not fit waits and is tried again.
CREATE TABLE batch_lines (
  batch_id       text NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
  line           integer NOT NULL,
  custom_id      text NOT NULL,
  body           jsonb NOT NULL,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dispatched', 'done')),
  request_id     uuid,
  claimed_until  timestamptz,
  not_before     timestamptz,
  attempts       integer NOT NULL DEFAULT 0,
  last_error     jsonb,
  ok             boolean,
  response       jsonb,
  error          jsonb,
  closed_by      text,
  PRIMARY KEY (batch_id, line)
);
CREATE INDEX batch_lines_pending ON batch_lines (batch_id, line) WHERE status = 'pending';
CREATE INDEX batch_lines_dispatched ON batch_lines (batch_id) WHERE status = 'dispatched';

-- The OpenAI front door: a request may be cancelled; it remembers which API admitted it (to answer
-- in that API's shape), chat messages (the ML Service applies the model's chat template), whether
-- its tokens are streamed, how generation finished, and the Idempotency-Key it was sent with.
ALTER TABLE inference_requests DROP CONSTRAINT inference_requests_status_check;
ALTER TABLE inference_requests ADD CONSTRAINT inference_requests_status_check
  CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled'));

ALTER TABLE inference_requests
  ADD COLUMN api               text NOT NULL DEFAULT 'inference',
  ADD COLUMN api_options       jsonb,
  ADD COLUMN messages          jsonb,
  ADD COLUMN stream_tokens     boolean NOT NULL DEFAULT false,
  ADD COLUMN finish_reason     text,
  ADD COLUMN idempotency_hash  text;

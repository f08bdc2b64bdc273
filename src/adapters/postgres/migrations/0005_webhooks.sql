-- Signed webhooks. Users register endpoints; when one of their requests or batches reaches a final
-- status, a trigger writes one delivery per matching endpoint into the outbox (webhook_deliveries) in
-- the same transaction as the status change, so an event is never lost nor written for a change that
-- rolled back. The delivery loop (components/webhooks) claims due rows under a lease and POSTs them.
CREATE TABLE webhook_endpoints (
  endpoint_id        text PRIMARY KEY,
  seq                bigserial NOT NULL,
  user_id            text NOT NULL,
  url                text NOT NULL,
  -- Empty: every event type.
  events             text[] NOT NULL DEFAULT '{}',
  -- Kept in clear: every delivery is signed with it (shown to the user once, at creation).
  secret             text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  disabled_at        timestamptz,
  disabled_reason    text,
  last_error         text,
  last_error_at      timestamptz,
  last_delivered_at  timestamptz
);
CREATE INDEX webhook_endpoints_by_user ON webhook_endpoints (user_id, seq);

-- One row per (event, endpoint). event_id is the `webhook-id` of every attempt of it. endpoint_id is
-- not a foreign key on purpose: the trigger inserts on the path of every finishing request, and a
-- key check racing an endpoint's deletion would fail that request's finishing statement. Deleting an
-- endpoint deletes its deliveries (webhooks.sql); one written in that race is never claimed (claims
-- join the endpoint) nor counted.
CREATE TABLE webhook_deliveries (
  delivery_id      bigserial PRIMARY KEY,
  endpoint_id      text NOT NULL,
  event_id         text NOT NULL,
  event_type       text NOT NULL,
  subject_id       text NOT NULL,
  created_at       timestamptz NOT NULL,
  next_attempt_at  timestamptz NOT NULL,
  claimed_until    timestamptz,
  attempts         integer NOT NULL DEFAULT 0,
  last_error       text,
  delivered_at     timestamptz,
  gave_up_at       timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Writes the deliveries of one event for every enabled endpoint of the user that takes its type.
-- With no endpoint this is one probe of webhook_endpoints_by_user and no row written. PL/pgSQL, not
-- SQL: its statement's plan is kept for the session, where a SQL function's is made again each call
-- (measured: 3x the cost of the whole UPDATE per finished row).
CREATE OR REPLACE FUNCTION webhook_enqueue(owner text, kind text, subject text, at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, subject_id, created_at, next_attempt_at)
  SELECT e.endpoint_id, ev.id, kind, subject, at, at
  FROM (SELECT 'evt_' || replace(gen_random_uuid()::text, '-', '') AS id) ev
  CROSS JOIN webhook_endpoints e
  WHERE e.user_id = owner AND e.disabled_at IS NULL AND (cardinality(e.events) = 0 OR kind = ANY (e.events));
END
$$;

-- A request reached a final status: its event type from its API and outcome (a completed response cut
-- off by max_output_tokens is incomplete, as the Responses API reports it).
CREATE OR REPLACE FUNCTION webhook_request_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.api = 'response' THEN
    PERFORM webhook_enqueue(NEW.user_id,
      CASE WHEN NEW.status = 'completed' AND NEW.finish_reason = 'length' THEN 'response.incomplete' ELSE 'response.' || NEW.status END,
      'resp_' || replace(NEW.request_id::text, '-', ''), COALESCE(NEW.completed_at, now()));
  ELSE
    PERFORM webhook_enqueue(NEW.user_id, 'inference.' || NEW.status, NEW.request_id::text, COALESCE(NEW.completed_at, now()));
  END IF;
  RETURN NULL;
END
$$;

-- A row trigger whose WHEN clause is checked without calling the function: the many status updates
-- that are not a final status of a native request or a background response cost nothing more.
-- Measured on the finishing UPDATE (100 rows a statement, this 2-core machine, best of 6): about
-- +7-14 us per finished row over 22-58 us without the trigger, with or without endpoints; a
-- statement-level trigger with transition tables was no cheaper and would materialize the
-- transition tables on every UPDATE of the table (publishing, claims), not only the final ones.
CREATE TRIGGER webhook_request_finished
AFTER UPDATE OF status ON inference_requests
FOR EACH ROW
WHEN (OLD.status IN ('queued', 'processing') AND NEW.status IN ('completed', 'failed', 'cancelled')
      AND (NEW.api = 'inference' OR (NEW.api = 'response' AND NEW.api_options ->> 'background' = 'true')))
EXECUTE FUNCTION webhook_request_finished();

CREATE OR REPLACE FUNCTION webhook_batch_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM webhook_enqueue(NEW.user_id, 'batch.' || NEW.status, NEW.batch_id,
    COALESCE(NEW.completed_at, NEW.failed_at, NEW.expired_at, NEW.cancelled_at, now()));
  RETURN NULL;
END
$$;

-- A batch fails at creation (a bad input file) or finishes later.
CREATE TRIGGER webhook_batch_failed_at_creation
AFTER INSERT ON batches
FOR EACH ROW
WHEN (NEW.status = 'failed')
EXECUTE FUNCTION webhook_batch_finished();

CREATE TRIGGER webhook_batch_finished
AFTER UPDATE OF status ON batches
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('completed', 'failed', 'expired', 'cancelled'))
EXECUTE FUNCTION webhook_batch_finished();

-- The statements of webhook-store.ts, by name (loaded by queries.ts's statementsOf).

-- name: insertWebhookEndpoint
INSERT INTO webhook_endpoints (endpoint_id, user_id, url, events, secret) VALUES ($1, $2, $3, $4::text[], $5);

-- $1: a user, or NULL for every user (the admin CLI).
-- name: listWebhookEndpoints
SELECT e.endpoint_id, e.user_id, e.url, e.events, e.created_at, e.disabled_at, e.disabled_reason, e.last_error,
       e.last_error_at, e.last_delivered_at,
       (SELECT count(*) FROM webhook_deliveries d
        WHERE d.endpoint_id = e.endpoint_id AND d.delivered_at IS NULL AND d.gave_up_at IS NULL)::int AS pending
FROM webhook_endpoints e
WHERE $1::text IS NULL OR e.user_id = $1::text
ORDER BY e.user_id, e.seq;

-- name: countWebhookEndpoints
SELECT count(*)::int AS n FROM webhook_endpoints WHERE user_id = $1;

-- Its undelivered events go with it.
-- name: deleteWebhookEndpoint
WITH gone AS (
  DELETE FROM webhook_endpoints WHERE endpoint_id = $1 AND ($2::text IS NULL OR user_id = $2::text) RETURNING endpoint_id
), deliveries AS (
  DELETE FROM webhook_deliveries WHERE endpoint_id IN (SELECT endpoint_id FROM gone)
)
SELECT endpoint_id FROM gone;

-- One statement: the row locks (SKIP LOCKED, so replicas pass each other by) last only as long as the
-- UPDATE; what keeps other replicas off a delivery while it is sent is its lease ($2), which one that
-- ran out before now ($1) no longer does. Deliveries of disabled endpoints wait.
-- name: claimWebhookDeliveries
UPDATE webhook_deliveries d SET claimed_until = $2, attempts = d.attempts + 1
FROM webhook_endpoints e
WHERE e.endpoint_id = d.endpoint_id AND d.delivery_id IN (
  SELECT pd.delivery_id FROM webhook_deliveries pd JOIN webhook_endpoints pe ON pe.endpoint_id = pd.endpoint_id
  WHERE pd.delivered_at IS NULL AND pd.gave_up_at IS NULL AND pd.next_attempt_at <= $1
    AND (pd.claimed_until IS NULL OR pd.claimed_until <= $1) AND pe.disabled_at IS NULL
  ORDER BY pd.next_attempt_at
  LIMIT $3
  FOR UPDATE OF pd SKIP LOCKED)
RETURNING d.delivery_id, d.endpoint_id, d.event_id, d.event_type, d.subject_id, d.created_at, d.attempts, e.url, e.secret;

-- name: markWebhookDelivered
WITH delivered AS (
  UPDATE webhook_deliveries SET delivered_at = $2, claimed_until = NULL WHERE delivery_id = $1 AND delivered_at IS NULL
  RETURNING endpoint_id
)
UPDATE webhook_endpoints SET last_delivered_at = $2 WHERE endpoint_id IN (SELECT endpoint_id FROM delivered);

-- name: rescheduleWebhookDelivery
WITH failed AS (
  UPDATE webhook_deliveries SET next_attempt_at = $2, claimed_until = NULL, last_error = $3
  WHERE delivery_id = $1 AND delivered_at IS NULL
  RETURNING endpoint_id
)
UPDATE webhook_endpoints SET last_error = $3, last_error_at = $4 WHERE endpoint_id IN (SELECT endpoint_id FROM failed);

-- The endpoint is disabled (the first reason is kept) and its other waiting events are given up
-- with it: a disabled endpoint is never sent to again (its owner registers it anew).
-- name: giveUpWebhookDelivery
WITH given_up AS (
  UPDATE webhook_deliveries SET gave_up_at = $4, claimed_until = NULL, last_error = $2
  WHERE delivery_id = $1 AND delivered_at IS NULL
  RETURNING endpoint_id
), others AS (
  UPDATE webhook_deliveries SET gave_up_at = $4
  WHERE endpoint_id IN (SELECT endpoint_id FROM given_up) AND delivery_id <> $1 AND delivered_at IS NULL AND gave_up_at IS NULL
)
UPDATE webhook_endpoints
SET last_error = $2, last_error_at = $4, disabled_at = COALESCE(disabled_at, $4), disabled_reason = COALESCE(disabled_reason, $3)
WHERE endpoint_id IN (SELECT endpoint_id FROM given_up);

-- name: countPendingWebhookDeliveries
SELECT count(*)::int AS n FROM webhook_deliveries d JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND e.disabled_at IS NULL;

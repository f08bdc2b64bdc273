-- Every statement the application runs, by name. Loaded once by queries.ts.

-- An id that is already stored is skipped, not an error: an Idempotency-Key names its request by
-- id, and the admission that loses the race answers with the row that won. Answers the ids inserted.
-- name: insertRequests
INSERT INTO inference_requests
  (request_id, user_id, model, prompt, params, estimated_tokens, quota_day, quota_month, created_at,
   api, api_options, messages, stream_tokens, idempotency_hash, deadline_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::int[], $7::date[], $8::text[],
                     $9::timestamptz[], $10::text[], $11::jsonb[], $12::jsonb[], $13::boolean[], $14::text[], $15::timestamptz[])
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id;

-- name: deleteUnpublishedRequest
DELETE FROM inference_requests WHERE request_id = $1 AND NOT published AND status = 'queued';

-- name: markPublished
UPDATE inference_requests SET published = true, claimed_until = NULL WHERE request_id = ANY($1::uuid[]) AND NOT published;

-- Claims are one statement each: the row locks (SKIP LOCKED, so replicas pass each other by) last only
-- as long as this UPDATE; what keeps other replicas off the row afterwards is the lease in claimed_until
-- ($3), which a lease that ran out before the claimer's clock ($4) no longer does.
-- name: claimUnpublished
UPDATE inference_requests SET claimed_until = $3
WHERE request_id IN (
  SELECT request_id FROM inference_requests
  WHERE NOT published AND status = 'queued' AND created_at < $1 AND (claimed_until IS NULL OR claimed_until <= $4)
  ORDER BY created_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
RETURNING request_id, user_id, model, prompt, params, estimated_tokens, quota_day, quota_month, status, published,
          created_at, started_at, completed_at, result, outputs, prompt_tokens, completion_tokens, total_tokens,
          error_code, error_message, api, api_options, messages, stream_tokens, finish_reason, idempotency_hash, deadline_at;

-- name: claimStale
UPDATE inference_requests SET claimed_until = $3
WHERE request_id IN (
  SELECT request_id FROM inference_requests
  WHERE status IN ('queued', 'processing') AND COALESCE(started_at, created_at) < $1
    AND (claimed_until IS NULL OR claimed_until <= $4)
  ORDER BY created_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
RETURNING request_id, user_id;

-- name: releaseClaim
UPDATE inference_requests SET claimed_until = NULL WHERE request_id = ANY($1::uuid[]) AND claimed_until IS NOT NULL;

-- Only rows still open change: an outcome stored after the claim wins over the timeout.
-- name: expireClaimed
UPDATE inference_requests
SET status = 'failed', completed_at = $2, started_at = COALESCE(started_at, $2), error_code = 'timeout',
    error_message = $3, claimed_until = NULL
WHERE request_id = ANY($1::uuid[]) AND status IN ('queued', 'processing')
RETURNING request_id, user_id;

-- Leases too: they belonged to the run before this one.
-- name: unpublishOpen
-- bound: bulk
UPDATE inference_requests SET published = false, claimed_until = NULL
WHERE status IN ('queued', 'processing') AND (published OR claimed_until IS NOT NULL);

-- name: countOpen
-- bound: bulk
SELECT COUNT(*)::int AS n FROM inference_requests WHERE status IN ('queued', 'processing');

-- name: finishRequests
-- Many outcomes in one statement (one per request id): the rows still open take their outcome, the
-- completed ones their ledger row, and so do cancelled ones that ran (the tokens processed) and
-- failures charged to the request (with no tokens);
-- answers the ids that changed.
WITH outcome AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[], $6::int[], $7::int[],
                       $8::int[], $9::text[], $10::text[], $11::int[], $12::timestamptz[], $13::boolean[], $14::text[])
    AS o(request_id, status, completed_at, result, outputs, prompt_tokens, completion_tokens, total_tokens,
         error_code, error_message, attempt, started_at, charged, finish_reason)
), finished AS (
  UPDATE inference_requests r
  SET status = o.status, completed_at = o.completed_at, result = o.result, outputs = o.outputs,
      prompt_tokens = o.prompt_tokens, completion_tokens = o.completion_tokens, total_tokens = o.total_tokens,
      error_code = o.error_code, error_message = o.error_message, attempts = GREATEST(r.attempts, o.attempt),
      finish_reason = o.finish_reason,
      started_at = COALESCE(r.started_at, o.started_at, o.completed_at)
  FROM outcome o
  WHERE r.request_id = o.request_id AND r.status IN ('queued', 'processing')
  RETURNING r.request_id, r.user_id, r.quota_day, r.quota_month, r.status, r.prompt_tokens, r.completion_tokens,
            r.total_tokens, r.completed_at, o.charged
), ledger AS (
  INSERT INTO usage_ledger (request_id, user_id, quota_day, quota_month, prompt_tokens, completion_tokens, total_tokens, settled_at)
  SELECT request_id, user_id, quota_day, quota_month, COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0),
         COALESCE(total_tokens, 0), completed_at
  FROM finished WHERE (status = 'completed' AND total_tokens IS NOT NULL) OR (status = 'cancelled' AND total_tokens > 0)
     OR (status = 'failed' AND charged)
  ON CONFLICT (request_id) DO NOTHING
)
SELECT request_id, quota_day, quota_month FROM finished;

-- name: getRequest
SELECT request_id, user_id, model, prompt, params, estimated_tokens, quota_day, quota_month, status, published,
       created_at, started_at, completed_at, result, outputs, prompt_tokens, completion_tokens, total_tokens,
       error_code, error_message, api, api_options, messages, stream_tokens, finish_reason, idempotency_hash, deadline_at
FROM inference_requests WHERE request_id = $1;

-- name: viewRequest
SELECT request_id, user_id, model, estimated_tokens, quota_day, quota_month, status, published,
       created_at, started_at, completed_at, result, outputs, prompt_tokens, completion_tokens, total_tokens,
       error_code, error_message, api, api_options, stream_tokens, finish_reason, idempotency_hash
FROM inference_requests WHERE request_id = $1;

-- name: viewRequests
SELECT request_id, user_id, model, estimated_tokens, quota_day, quota_month, status, published,
       created_at, started_at, completed_at, result, outputs, prompt_tokens, completion_tokens, total_tokens,
       error_code, error_message, api, api_options, stream_tokens, finish_reason, idempotency_hash
FROM inference_requests WHERE request_id = ANY($1::uuid[]);

-- One page of a user's requests, newest first, keyset on (created_at, request_id) ($4, $5: the last
-- row of the previous page, or NULL for the first page; $2: a status or NULL). created_at is compared
-- at millisecond precision, the precision of the cursor a client gets back (a JavaScript Date).
-- name: listUserRequests
SELECT request_id, user_id, model, estimated_tokens, quota_day, quota_month, status, published,
       created_at, started_at, completed_at, result, outputs, prompt_tokens, completion_tokens, total_tokens,
       error_code, error_message, api, api_options, stream_tokens, finish_reason, idempotency_hash
FROM inference_requests
WHERE user_id = $1 AND ($2::text IS NULL OR status = $2::text)
  AND ($4::timestamptz IS NULL OR (date_trunc('milliseconds', created_at), request_id) < ($4::timestamptz, $5::uuid))
ORDER BY date_trunc('milliseconds', created_at) DESC, request_id DESC
LIMIT $3;

-- name: replaySettled
-- bound: bulk
SELECT request_id, user_id, quota_day::text AS quota_day, total_tokens AS tokens
FROM usage_ledger WHERE quota_month = $1;

-- name: replayOpen
-- bound: bulk
SELECT request_id, user_id, quota_day::text AS quota_day, estimated_tokens AS tokens
FROM inference_requests WHERE status IN ('queued', 'processing');

-- name: ledgerTotals
SELECT COALESCE(SUM(total_tokens), 0)::bigint AS tokens, COUNT(*)::bigint AS requests
FROM usage_ledger WHERE user_id = $1 AND quota_day = $2;

-- name: usersQuotaSnapshot
-- bound: bulk
-- Some users' settled usage of a month by the day each request was reserved in, and their open
-- reservations, in ONE statement: one snapshot, so a request finishing meanwhile (its ledger row and
-- its status change commit together) is either open or settled here, never both and never neither.
SELECT 'settled' AS kind, NULL::uuid AS request_id, user_id, quota_day::text AS quota_day,
       COUNT(*)::int AS requests, COALESCE(SUM(total_tokens), 0)::bigint AS tokens
FROM usage_ledger WHERE user_id = ANY($1::text[]) AND quota_month = $2 GROUP BY user_id, quota_day
UNION ALL
SELECT 'open', request_id, user_id, quota_day::text, 1, estimated_tokens::bigint
FROM inference_requests WHERE status IN ('queued', 'processing') AND user_id = ANY($1::text[]);

-- name: findUserByKeyHash
SELECT u.user_id, u.tier, u.disabled, t.daily_requests, t.daily_tokens, t.monthly_requests, t.monthly_tokens
FROM api_keys k
JOIN users u ON u.user_id = k.user_id
JOIN tiers t ON t.name = u.tier
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: findUser
SELECT u.user_id, u.tier, u.disabled, t.daily_requests, t.daily_tokens, t.monthly_requests, t.monthly_tokens
FROM users u JOIN tiers t ON t.name = u.tier WHERE u.user_id = $1;

-- name: insertUser
INSERT INTO users (user_id, tier) VALUES ($1, $2);

-- name: setUserTier
UPDATE users SET tier = $2 WHERE user_id = $1;

-- name: listUsers
SELECT u.user_id, u.tier, u.disabled, u.created_at,
       (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.user_id AND k.revoked_at IS NULL)::int AS active_keys
FROM users u ORDER BY u.user_id;

-- name: insertApiKey
INSERT INTO api_keys (key_id, user_id, key_hash) VALUES ($1, $2, $3);

-- name: revokeApiKey
UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL;

-- name: upsertTier
INSERT INTO tiers (name, daily_requests, daily_tokens, monthly_requests, monthly_tokens)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE SET daily_requests = EXCLUDED.daily_requests, daily_tokens = EXCLUDED.daily_tokens,
  monthly_requests = EXCLUDED.monthly_requests, monthly_tokens = EXCLUDED.monthly_tokens;

-- name: listTiers
SELECT name, daily_requests, daily_tokens, monthly_requests, monthly_tokens FROM tiers ORDER BY name;

-- ---------------------------------------------------------------- the Batch API (files, batches, lines)
-- Every read of a file or batch names its owner: someone else's is not found, exactly like a missing one.

-- name: insertBatchFile
-- bound: bulk
INSERT INTO batch_files (file_id, user_id, purpose, filename, bytes, content, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- A batch's output or error file ($8: the batch): it lasts what the batch was created with.
-- A file past its expires_at ($3: now) is not found, like a missing one, before the sweeper deletes it.
-- name: getBatchFile
SELECT file_id, purpose, filename, bytes, created_at, expires_at FROM batch_files
WHERE file_id = $1 AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3);

-- name: getBatchFileContent
-- bound: bulk
SELECT content FROM batch_files WHERE file_id = $1 AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3);

-- $3: the id to list after (null: from the newest), $4: at most this many (the caller asks one more to learn has_more), $5: now.
-- name: listBatchFiles
SELECT file_id, purpose, filename, bytes, created_at, expires_at FROM batch_files
WHERE user_id = $1 AND ($2::text IS NULL OR purpose = $2) AND (expires_at IS NULL OR expires_at > $5)
  AND ($3::text IS NULL OR seq < (SELECT seq FROM batch_files WHERE file_id = $3 AND user_id = $1))
ORDER BY seq DESC LIMIT $4;

-- name: deleteBatchFile
DELETE FROM batch_files WHERE file_id = $1 AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3) RETURNING file_id;

-- Expired files, at most $2 of them (their bytes can be large): one short statement, no transaction.
-- name: deleteExpiredBatchFiles
-- bound: bulk
DELETE FROM batch_files WHERE file_id IN (
  SELECT file_id FROM batch_files WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
);

-- A new batch is `validating`: its input file is read and checked later (claimValidatingBatches).
-- name: insertBatch
INSERT INTO batches (batch_id, user_id, endpoint, input_file_id, completion_window, metadata, status,
                     created_at, expires_at, output_expires_after_seconds)
VALUES ($1, $2, $3, $4, $5, $6, 'validating', $7, $8, $9);

-- Validating batches no replica holds ($1: now), oldest first, at most $3, leased until $2: two
-- replicas never validate one batch at once (SKIP LOCKED: they pass each other by), and a batch
-- whose validator died is taken again once its lease ran out.
-- name: claimValidatingBatches
UPDATE batches b SET validation_until = $2
FROM (SELECT batch_id FROM batches
      WHERE status = 'validating' AND (validation_until IS NULL OR validation_until <= $1)
      ORDER BY created_at LIMIT $3
      FOR UPDATE SKIP LOCKED) c
WHERE b.batch_id = c.batch_id
RETURNING b.batch_id, b.user_id, b.endpoint, b.input_file_id;

-- Its file is valid: in progress, in the transaction that inserts its lines. Guarded by the status
-- (cancelled meanwhile, or validated by a replica that took over a lease that ran out: nothing
-- changes, and the caller inserts no lines).
-- name: startValidatedBatch
UPDATE batches SET status = 'in_progress', in_progress_at = $2, validation_until = NULL
WHERE batch_id = $1 AND status = 'validating'
RETURNING user_id;

-- Its file is not valid (or gone): failed with OpenAI's errors.data[], no lines, nothing reserved.
-- name: failValidatedBatch
UPDATE batches SET status = 'failed', failed_at = $2, errors = $3, validation_until = NULL
WHERE batch_id = $1 AND status = 'validating'
RETURNING batch_id;

-- name: insertBatchLines
INSERT INTO batch_lines (batch_id, line, custom_id, body, model, cost)
SELECT $1::text, * FROM unnest($2::int[], $3::text[], $4::jsonb[], $5::text[], $6::int[]);

-- The owner of a new batch has a place in the fair share from now on (kept when it comes back).
-- name: insertFairShareTenant
INSERT INTO batch_fair_share (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING;

-- The batch with its request counts: failed = lines in the error file (refused, failed, never run).
-- name: getBatch
SELECT b.*, c.total, c.completed, c.failed,
       (SELECT m.model FROM batch_lines m WHERE m.batch_id = b.batch_id ORDER BY m.line LIMIT 1) AS model FROM batches b,
  LATERAL (SELECT count(*) AS total, count(*) FILTER (WHERE l.ok) AS completed,
                  count(*) FILTER (WHERE l.status = 'done' AND NOT l.ok) AS failed
           FROM batch_lines l WHERE l.batch_id = b.batch_id) c
WHERE b.batch_id = $1 AND b.user_id = $2;

-- name: listBatches
SELECT b.*, c.total, c.completed, c.failed,
       (SELECT m.model FROM batch_lines m WHERE m.batch_id = b.batch_id ORDER BY m.line LIMIT 1) AS model FROM batches b,
  LATERAL (SELECT count(*) AS total, count(*) FILTER (WHERE l.ok) AS completed,
                  count(*) FILTER (WHERE l.status = 'done' AND NOT l.ok) AS failed
           FROM batch_lines l WHERE l.batch_id = b.batch_id) c
WHERE b.user_id = $1 AND ($2::text IS NULL OR b.seq < (SELECT seq FROM batches WHERE batch_id = $2 AND user_id = $1))
ORDER BY b.seq DESC LIMIT $3;

-- Only a batch still running becomes cancelling; the dispatcher stops claiming its lines at once.
-- A validating one is never validated then (startValidatedBatch's guard): with no lines, it ends cancelled.
-- name: cancelBatch
UPDATE batches SET status = 'cancelling', cancelling_at = $3
WHERE batch_id = $1 AND user_id = $2 AND status IN ('validating', 'in_progress')
RETURNING batch_id;

-- Taken in the transaction of a claim or of ending lines: replicas claim one after the other, each
-- seeing the slots the others took (no model ever has more than its slots in flight), and never end
-- the same lines or charge the same tenants in opposite orders (no deadlock between two watchers).
-- name: lockFairShare
SELECT pg_advisory_xact_lock(8151024);

-- Fair claiming (start-time fair queueing over tenants, README "Batch scheduling"). Each tenant's
-- next lines get start tags: where its queue stands (its finish tag, never behind the clock, the
-- latest start tag claimed) plus the estimated tokens of its earlier lines, over its tier's weight.
-- Per model, the lowest tags take the free slots ($3 minus the lines admitted and unfinished or
-- leased), whoever's batch came first. Only each running batch's first $3 claimable lines are looked
-- at, so a tick costs as much as there are running batches, not lines. A claimed line is dispatched
-- at once (guarded by status, so never twice), with a lease ($2) on its admission: its request's id
-- is derived from the line, so no second write says it was admitted, and a line whose lease ran out
-- with no request goes back to pending (releaseBatchLines). The claimed estimates are charged to the
-- tenants' finish tags at once (ended lines get their real tokens: finishBatchLines).
-- name: claimBatchLines
WITH in_flight AS (
  SELECT COALESCE(model, '') AS model, count(*) AS n FROM batch_lines WHERE status = 'dispatched' GROUP BY 1
), clock AS (
  SELECT COALESCE(max(last_start), 0) AS now_tag FROM batch_fair_share
), candidates AS (
  SELECT b.batch_id, b.user_id, b.created_at, b.endpoint, COALESCE(t.weight, 1) AS weight, c.line, c.model, c.cost,
         GREATEST(COALESCE(f.finish_tag, 0), clock.now_tag) AS base
  FROM batches b
  CROSS JOIN clock
  LEFT JOIN batch_fair_share f ON f.user_id = b.user_id
  LEFT JOIN batch_tenant_weights t ON t.user_id = b.user_id
  CROSS JOIN LATERAL (
    SELECT l.line, COALESCE(l.model, '') AS model, l.cost FROM batch_lines l
    WHERE l.batch_id = b.batch_id AND l.status = 'pending' AND (l.not_before IS NULL OR l.not_before <= $1)
    ORDER BY l.line LIMIT $3) c
  WHERE b.status = 'in_progress' AND b.expires_at > $1
), tagged AS (
  SELECT *, base + (sum(cost) OVER queue - cost) / weight AS start_tag FROM candidates
  WINDOW queue AS (PARTITION BY user_id, model ORDER BY created_at, batch_id, line)
), chosen AS (
  SELECT r.* FROM (
    SELECT *, row_number() OVER (PARTITION BY model ORDER BY start_tag, created_at, batch_id, line) AS place FROM tagged
  ) r LEFT JOIN in_flight i ON i.model = r.model
  WHERE r.place <= $3 - COALESCE(i.n, 0)
), claimed AS (
  UPDATE batch_lines l SET status = 'dispatched', claimed_until = $2, attempts = l.attempts + 1, last_error = NULL
  FROM chosen c
  WHERE l.batch_id = c.batch_id AND l.line = c.line AND l.status = 'pending'
  RETURNING l.batch_id, l.line, l.custom_id, l.body, c.user_id, c.endpoint, c.weight, c.cost, c.start_tag
), charged AS (
  UPDATE batch_fair_share f
  SET finish_tag = GREATEST(f.finish_tag, clock.now_tag) + s.charge, last_start = GREATEST(f.last_start, s.last_start)
  FROM (SELECT user_id, sum(cost / weight) AS charge, max(start_tag) AS last_start FROM claimed GROUP BY user_id) s, clock
  WHERE f.user_id = s.user_id
)
SELECT batch_id, line, custom_id, body, user_id, endpoint, start_tag FROM claimed ORDER BY start_tag, batch_id, line;

-- The user's quota did not fit it: tried again after $3, unless the window ends first.
-- The line's estimate charged when it was claimed is given back (it did not run).
-- name: deferBatchLine
WITH deferred AS (
  UPDATE batch_lines SET status = 'pending', claimed_until = NULL, not_before = $3, last_error = $4
  WHERE batch_id = $1 AND line = $2 AND status = 'dispatched'
  RETURNING batch_id, cost
)
UPDATE batch_fair_share f SET finish_tag = f.finish_tag - d.cost / w.weight
FROM deferred d JOIN batches b ON b.batch_id = d.batch_id JOIN batch_tenant_weights w ON w.user_id = b.user_id
WHERE f.user_id = b.user_id;

-- Refused at admission for good (not a quota): in the error file, never run.
-- name: refuseBatchLine
WITH refused AS (
  UPDATE batch_lines SET status = 'done', ok = false, response = $3, error = $4, claimed_until = NULL, closed_by = 'refused'
  WHERE batch_id = $1 AND line = $2 AND status = 'dispatched'
  RETURNING batch_id, cost
), given_back AS (
  UPDATE batch_fair_share f SET finish_tag = f.finish_tag - r.cost / w.weight
  FROM refused r JOIN batches b ON b.batch_id = r.batch_id JOIN batch_tenant_weights w ON w.user_id = b.user_id
  WHERE f.user_id = b.user_id
)
SELECT count(*)::int AS refused FROM refused;

-- Dispatched lines with their owners (their requests' ids are derived from both) and admission leases.
-- name: dispatchedBatchLines
SELECT l.batch_id, l.line, b.user_id, l.claimed_until FROM batch_lines l JOIN batches b ON b.batch_id = l.batch_id
WHERE l.status = 'dispatched' ORDER BY l.batch_id, l.line LIMIT $1;

-- Dispatched lines whose admission never happened (their replica died, or a store failed, before their
-- requests were stored) and whose leases ran out by $3: pending again, to be claimed like any other.
-- Their estimates charged when they were claimed are given back. A request stored meanwhile after all
-- is found again by the line's next admission (the same derived id), never made twice.
-- name: releaseBatchLines
WITH released AS (
  UPDATE batch_lines l SET status = 'pending', claimed_until = NULL
  FROM unnest($1::text[], $2::int[]) AS u(batch_id, line)
  WHERE l.batch_id = u.batch_id AND l.line = u.line AND l.status = 'dispatched' AND l.claimed_until <= $3
  RETURNING l.batch_id, l.cost
)
UPDATE batch_fair_share f SET finish_tag = f.finish_tag - r.cost / w.weight
FROM released r JOIN batches b ON b.batch_id = r.batch_id JOIN batch_tenant_weights w ON w.user_id = b.user_id
WHERE f.user_id = b.user_id;

-- Ended lines: their tenants' finish tags get the real tokens ($6) in place of the estimates charged
-- when they were claimed, and count as served.
-- name: finishBatchLines
WITH ended AS (
  UPDATE batch_lines l SET status = 'done', ok = u.ok, response = u.response, error = u.error, request_id = u.request_id, claimed_until = NULL
  FROM unnest($1::text[], $2::int[], $3::boolean[], $4::jsonb[], $5::jsonb[], $6::int[], $7::uuid[]) AS u(batch_id, line, ok, response, error, tokens, request_id)
  WHERE l.batch_id = u.batch_id AND l.line = u.line AND l.status = 'dispatched'
  RETURNING l.batch_id, l.cost, u.tokens, u.ok
), charged AS (
  UPDATE batch_fair_share f SET finish_tag = f.finish_tag + s.correction, served_tokens = f.served_tokens + s.tokens
  FROM (
    SELECT b.user_id, sum((e.tokens - e.cost) / w.weight) AS correction, sum(e.tokens) AS tokens
    FROM ended e JOIN batches b ON b.batch_id = e.batch_id JOIN batch_tenant_weights w ON w.user_id = b.user_id
    GROUP BY b.user_id
  ) s
  WHERE f.user_id = s.user_id
)
-- What really ended here (lines another replica ended first are not counted twice).
SELECT count(*) FILTER (WHERE ok)::int AS completed, count(*) FILTER (WHERE NOT ok)::int AS failed FROM ended;

-- Lines that will never run: those of cancelling batches, and of running batches whose window is
-- over (a line that was waiting for quota keeps that reason). Dispatched lines are left to their requests.
-- name: closeBatchLines
UPDATE batch_lines l SET status = 'done', ok = false, claimed_until = NULL,
  closed_by = CASE WHEN b.status = 'cancelling' THEN 'cancelled' ELSE 'expired' END,
  error = CASE
    WHEN b.status = 'cancelling' THEN jsonb_build_object('code', 'batch_cancelled', 'message', 'the batch was cancelled before this request ran')
    ELSE COALESCE(l.last_error, jsonb_build_object('code', 'batch_expired', 'message', 'the batch''s completion window ended before this request ran'))
  END
FROM batches b
WHERE b.batch_id = l.batch_id AND l.status = 'pending'
  AND (b.status = 'cancelling' OR (b.status = 'in_progress' AND b.expires_at <= $1))
RETURNING l.closed_by;

-- Batches whose every line is done, with whether any line was closed by the window.
-- name: finishableBatches
SELECT b.batch_id, b.user_id, b.status,
       EXISTS (SELECT 1 FROM batch_lines e WHERE e.batch_id = b.batch_id AND e.closed_by = 'expired') AS expired
FROM batches b
WHERE b.status IN ('in_progress', 'finalizing', 'cancelling')
  -- Pending and dispatched apart, each by its partial index: `status <> 'done'` would walk the done lines.
  AND NOT EXISTS (SELECT 1 FROM batch_lines l WHERE l.batch_id = b.batch_id AND l.status = 'pending')
  AND NOT EXISTS (SELECT 1 FROM batch_lines l WHERE l.batch_id = b.batch_id AND l.status = 'dispatched')
ORDER BY b.created_at LIMIT $1;

-- The batch backlog per model, for the gauge the worker's autoscaler reads (by the pending-lines index).
-- name: pendingBatchLinesByModel
-- bound: bulk
SELECT COALESCE(model, '') AS model, count(*)::int AS n FROM batch_lines WHERE status = 'pending' GROUP BY 1;

-- A finished batch's output ($5 true: its completed lines) or error file ($5 false: the rest), built
-- where its lines are, one OpenAI output line each in line order ({id, custom_id, response, error};
-- the id derived from the line's request, so the same lines make the same bytes); nothing when no
-- line belongs in it. Expires as the batch's output files do.
-- name: writeBatchOutputFile
-- bound: bulk
WITH content AS (
  SELECT convert_to(string_agg(json_build_object(
           'id', 'batch_req_' || COALESCE(replace(l.request_id::text, '-', ''), substr(l.batch_id, 7) || '_' || l.line),
           'custom_id', l.custom_id, 'response', l.response, 'error', l.error)::text || E'\n', '' ORDER BY l.line), 'UTF8') AS bytes
  FROM batch_lines l WHERE l.batch_id = $1 AND l.ok = $5
)
INSERT INTO batch_files (file_id, user_id, purpose, filename, bytes, content, created_at, expires_at)
SELECT $2::text, b.user_id, 'batch_output', $3::text, octet_length(c.bytes), c.bytes, $4::timestamptz,
       $4::timestamptz + make_interval(secs => b.output_expires_after_seconds)
FROM batches b, content c WHERE b.batch_id = $1 AND c.bytes IS NOT NULL
RETURNING file_id;

-- Every line done and none closed by the window: the batch is finalizing while its files are written.
-- name: finalizeBatch
UPDATE batches SET status = 'finalizing', finalizing_at = $2 WHERE batch_id = $1 AND status = 'in_progress' RETURNING batch_id;

-- Guarded by the status it was read in: of two replicas finishing one batch, one writes its files.
-- name: finishBatch
UPDATE batches SET status = $3::text, finalizing_at = COALESCE(finalizing_at, $4::timestamptz),
  usage = (SELECT jsonb_build_object('input_tokens', COALESCE(sum(r.prompt_tokens), 0), 'output_tokens', COALESCE(sum(r.completion_tokens), 0),
                                     'total_tokens', COALESCE(sum(r.total_tokens), 0))
           FROM batch_lines l JOIN inference_requests r ON r.request_id = l.request_id WHERE l.batch_id = $1),
  completed_at = CASE WHEN $3::text = 'completed' THEN $4::timestamptz END,
  expired_at = CASE WHEN $3::text = 'expired' THEN $4::timestamptz END,
  cancelled_at = CASE WHEN $3::text = 'cancelled' THEN $4::timestamptz END
WHERE batch_id = $1 AND status = $2
RETURNING batch_id;

-- name: setBatchFiles
UPDATE batches SET output_file_id = $2, error_file_id = $3 WHERE batch_id = $1;

-- The queue as the estimate sees it: open requests (queued or running) and their estimated tokens,
-- batch lines not yet dispatched, and what finished lately: the last $2 requests (all when null)
-- finished since $1 (count, estimated tokens, mean run, when the first and the last finished, and
-- the first one's estimated tokens), by the finished-requests index.
-- name: queueSnapshot
-- bound: bulk
SELECT o.open_requests, o.open_tokens,
       (SELECT count(*) FROM batch_lines WHERE status = 'pending')::int AS pending_lines,
       f.finished, f.finished_tokens, f.mean_run_seconds, f.first_finished_at, f.last_finished_at, f.first_tokens
FROM (SELECT count(*)::int AS open_requests, COALESCE(sum(estimated_tokens), 0)::bigint AS open_tokens
      FROM inference_requests WHERE status IN ('queued', 'processing')) o,
     (SELECT count(*)::int AS finished, COALESCE(sum(estimated_tokens), 0)::bigint AS finished_tokens,
             avg(EXTRACT(EPOCH FROM completed_at - started_at)) FILTER (WHERE started_at IS NOT NULL)::float8 AS mean_run_seconds,
             min(completed_at) AS first_finished_at, max(completed_at) AS last_finished_at,
             (array_agg(estimated_tokens ORDER BY completed_at))[1] AS first_tokens
      FROM (SELECT estimated_tokens, completed_at, started_at FROM inference_requests
            WHERE completed_at > $1 ORDER BY completed_at DESC LIMIT $2) recent) f;

-- A user's open requests, and the open requests (and their estimated tokens) admitted before the oldest of them.
-- name: queuePosition
-- bound: bulk
WITH mine AS (
  SELECT count(*)::int AS open, min(created_at) AS oldest
  FROM inference_requests WHERE user_id = $1 AND status IN ('queued', 'processing')
)
SELECT mine.open, a.ahead, a.ahead_tokens
FROM mine, LATERAL (
  SELECT count(*)::int AS ahead, COALESCE(sum(estimated_tokens), 0)::bigint AS ahead_tokens
  FROM inference_requests r WHERE r.status IN ('queued', 'processing') AND r.created_at < mine.oldest
) a;

-- name: setTierWeight
UPDATE tiers SET weight = $2 WHERE name = $1;

-- name: tierWeights
SELECT name, weight FROM tiers ORDER BY name;

-- name: fairShares
SELECT user_id, finish_tag, served_tokens FROM batch_fair_share ORDER BY user_id;

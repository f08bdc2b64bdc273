-- A claimed batch line is dispatched at once, its lease on the admission kept with it (claimBatchLines):
-- pending lines carry no lease any more, and a line's request id is written when it ends.
DROP INDEX IF EXISTS batch_lines_leased;
UPDATE batch_lines SET claimed_until = NULL WHERE status = 'pending' AND claimed_until IS NOT NULL;

-- The admin page's throughput (requests finished in the last minute) reads finished rows by when
-- they finished; without this index that count would scan every request ever stored.
CREATE INDEX inference_requests_finished ON inference_requests (completed_at) WHERE completed_at IS NOT NULL;

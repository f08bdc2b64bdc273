-- Deadlines: a request may carry the latest time it may start (max_queue_seconds at admission);
-- the queue estimate reads recently finished requests by completed_at (indexed by 0006).
ALTER TABLE inference_requests ADD COLUMN deadline_at timestamptz;

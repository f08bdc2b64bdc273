-- The sweeper's lease on a request row: while claimed_until lies ahead, no other replica claims the
-- row (to publish it again, or to expire it). The claimer publishes or releases quota with no
-- transaction open, then marks the row; a claimer that dies lets its lease run out and another
-- replica claims the row again. NULL = not claimed.
ALTER TABLE inference_requests ADD COLUMN claimed_until timestamptz;

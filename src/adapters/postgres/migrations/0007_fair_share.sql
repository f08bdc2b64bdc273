-- Fair scheduling of batch lines between tenants (start-time fair queueing, see README "Batch
-- scheduling"). A tier's weight is its tenants' share of the batch slots: 2 gets twice the tokens of 1.
ALTER TABLE tiers ADD COLUMN weight double precision NOT NULL DEFAULT 1 CHECK (weight > 0);

-- What the scheduler needs of a line without parsing its body: the model it runs on (slots are per
-- model) and its estimated tokens (charged when claimed, replaced by the real count when it ends).
-- Lines stored before this migration keep their body's model name.
ALTER TABLE batch_lines ADD COLUMN model text, ADD COLUMN cost integer NOT NULL DEFAULT 1 CHECK (cost > 0);
UPDATE batch_lines SET model = body->>'model';

-- Lines claimed and not yet admitted hold a slot until their lease runs out.
CREATE INDEX batch_lines_leased ON batch_lines (claimed_until) WHERE status = 'pending' AND claimed_until IS NOT NULL;

-- One row per tenant that ever had a batch. `finish_tag`: where the tenant's queue stands in virtual
-- tokens (tokens / weight): the estimates of its lines in flight and the real tokens of the ended
-- ones. `last_start`: the start tag of its latest claimed line; the largest over all tenants is the
-- clock a tenant coming back from idle starts at, so it cannot spend credit saved while away.
-- `served_tokens`: real tokens of its ended lines (what the scheduler shared out).
CREATE TABLE batch_fair_share (
  user_id        text PRIMARY KEY,
  finish_tag     double precision NOT NULL DEFAULT 0,
  last_start     double precision NOT NULL DEFAULT 0,
  served_tokens  bigint NOT NULL DEFAULT 0
);
INSERT INTO batch_fair_share (user_id) SELECT DISTINCT user_id FROM batches;

-- Each tenant's weight: its tier's (1 without a user row, as the anonymous caller).
CREATE VIEW batch_tenant_weights AS
SELECT f.user_id, COALESCE(t.weight, 1) AS weight
FROM batch_fair_share f LEFT JOIN users u ON u.user_id = f.user_id LEFT JOIN tiers t ON t.name = u.tier;

-- Tiers carry the quota limits; NULL means unlimited.
CREATE TABLE tiers (
  name              text PRIMARY KEY,
  daily_requests    integer CHECK (daily_requests >= 0),
  daily_tokens      bigint  CHECK (daily_tokens >= 0),
  monthly_requests  integer CHECK (monthly_requests >= 0),
  monthly_tokens    bigint  CHECK (monthly_tokens >= 0),
  created_at        timestamptz NOT NULL DEFAULT now()
);

-- The first version's limits: 100 requests and 100,000 tokens a day.
INSERT INTO tiers (name, daily_requests, daily_tokens, monthly_requests, monthly_tokens)
VALUES ('free', 100, 100000, NULL, 3000000), ('pro', 10000, 10000000, NULL, NULL);

CREATE TABLE users (
  user_id     text PRIMARY KEY,
  tier        text NOT NULL REFERENCES tiers(name),
  disabled    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored as SHA-256 hashes only; the key itself is shown once, at creation.
CREATE TABLE api_keys (
  key_id      text PRIMARY KEY,
  user_id     text NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  key_hash    text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- user_id is not a foreign key: anonymous callers (a setting) have no users row.
CREATE TABLE inference_requests (
  request_id         uuid PRIMARY KEY,
  user_id            text NOT NULL,
  model              text NOT NULL,
  prompt             text NOT NULL,
  params             jsonb NOT NULL,
  estimated_tokens   integer NOT NULL,
  quota_day          date NOT NULL,
  quota_month        text NOT NULL,
  status             text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
  published          boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  started_at         timestamptz,
  completed_at       timestamptz,
  result             text,
  outputs            jsonb,
  prompt_tokens      integer,
  completion_tokens  integer,
  total_tokens       integer,
  error_code         text,
  error_message      text,
  attempts           integer NOT NULL DEFAULT 0
);
CREATE INDEX inference_requests_user_created ON inference_requests (user_id, created_at DESC);
CREATE INDEX inference_requests_unpublished ON inference_requests (created_at) WHERE NOT published;
CREATE INDEX inference_requests_open ON inference_requests (created_at) WHERE status IN ('queued', 'processing');

-- The durable usage ledger: one row per settled request, in the quota window it was reserved in.
-- Redis counters can be rebuilt from it.
CREATE TABLE usage_ledger (
  request_id         uuid PRIMARY KEY REFERENCES inference_requests(request_id) ON DELETE CASCADE,
  user_id            text NOT NULL,
  quota_day          date NOT NULL,
  quota_month        text NOT NULL,
  prompt_tokens      integer NOT NULL,
  completion_tokens  integer NOT NULL,
  total_tokens       integer NOT NULL,
  settled_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_ledger_user_day ON usage_ledger (user_id, quota_day);
CREATE INDEX usage_ledger_user_month ON usage_ledger (user_id, quota_month);

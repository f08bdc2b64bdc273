-- Reserve quota for one request, atomically. Mirrors firstFailingLimit in
-- src/domain/quota-windows.ts (same check order, same comparisons).
--
-- KEYS[1]  day hash          <prefix>quota:{<user>}:d:<YYYY-MM-DD>   fields requests, used, reserved
-- KEYS[2]  month hash        <prefix>quota:{<user>}:m:<YYYY-MM>      fields requests, used, reserved
-- KEYS[3]  reservation hash  <prefix>quota:{<user>}:r:<requestId>    fields tokens, day, month, state
-- KEYS[4]  rebuilt marker    <prefix>quota:{<user>}:rebuilt           set once the user's counters match the ledger
-- ARGV[1]  tokens to reserve (non-negative integer)
-- ARGV[2..5] limits: daily_requests, daily_tokens, monthly_requests, monthly_tokens (-1 = unlimited)
-- ARGV[6]  day  (YYYY-MM-DD)      ARGV[7] month (YYYY-MM)
-- ARGV[8]  day key EXPIREAT       ARGV[9] month key EXPIREAT      ARGV[10] reservation EXPIREAT
-- ARGV[11] 1 when the counters are rebuilt from a durable ledger (then a missing marker means
--          Redis lost them), 0 when Redis is the only record
--
-- Returns {1, duplicate (0|1), day, month} when admitted (for a duplicate: the recorded window),
-- followed, for a new reservation, by the window's counts with it: day requests, day tokens (used +
-- reserved), month requests, month tokens (what OpenAI's rate-limit headers report),
-- or {0, limit name, current, limit value} when a limit would be exceeded (nothing changed),
-- or {2, 0, 0, 0} when the user's counters must be rebuilt first (nothing changed).

if ARGV[11] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then
  return {2, 0, 0, 0}
end

local existing = redis.call('HMGET', KEYS[3], 'day', 'month')
if existing[1] then
  return {1, 1, existing[1], existing[2]}
end

local tokens = tonumber(ARGV[1])
local d = redis.call('HMGET', KEYS[1], 'requests', 'used', 'reserved')
local m = redis.call('HMGET', KEYS[2], 'requests', 'used', 'reserved')
local dRequests = tonumber(d[1]) or 0
local dTokens = (tonumber(d[2]) or 0) + (tonumber(d[3]) or 0)
local mRequests = tonumber(m[1]) or 0
local mTokens = (tonumber(m[2]) or 0) + (tonumber(m[3]) or 0)

-- name, limit, current, amount this request adds; monthly first, requests before tokens
local checks = {
  {'monthly_requests', tonumber(ARGV[4]), mRequests, 1},
  {'monthly_tokens', tonumber(ARGV[5]), mTokens, tokens},
  {'daily_requests', tonumber(ARGV[2]), dRequests, 1},
  {'daily_tokens', tonumber(ARGV[3]), dTokens, tokens},
}
for _, c in ipairs(checks) do
  local limit = c[2]
  if limit >= 0 and c[3] + c[4] > limit then
    return {0, c[1], c[3], limit}
  end
end

redis.call('HINCRBY', KEYS[1], 'requests', 1)
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'requests', 1)
redis.call('HINCRBY', KEYS[2], 'reserved', ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[8])
redis.call('EXPIREAT', KEYS[2], ARGV[9])
redis.call('HSET', KEYS[3], 'tokens', ARGV[1], 'day', ARGV[6], 'month', ARGV[7], 'state', 'reserved')
redis.call('EXPIREAT', KEYS[3], ARGV[10])
return {1, 0, ARGV[6], ARGV[7], dRequests + 1, dTokens + tokens, mRequests + 1, mTokens + tokens}

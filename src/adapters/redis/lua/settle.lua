-- Settle a reservation, exactly once: replace the reserved estimate by the real count, in the
-- windows the reservation was made in.
--
-- KEYS[1]  reservation hash  <prefix>quota:{<user>}:r:<requestId>
-- KEYS[2]  day hash of the reservation's day
-- KEYS[3]  month hash of the reservation's month
-- ARGV[1]  actual tokens (non-negative integer)
-- ARGV[2]  day the caller read from the reservation    ARGV[3] month likewise
-- ARGV[4]  day key EXPIREAT                             ARGV[5] month key EXPIREAT
--
-- Returns settled | already_settled | already_released | unknown_reservation | window_mismatch
-- (window_mismatch: KEYS[2]/KEYS[3] are not the reservation's windows; the caller re-reads).

local r = redis.call('HMGET', KEYS[1], 'state', 'tokens', 'day', 'month')
local state = r[1]
if not state then return 'unknown_reservation' end
if state == 'settled' then return 'already_settled' end
if state == 'released' then return 'already_released' end
if r[3] ~= ARGV[2] or r[4] ~= ARGV[3] then return 'window_mismatch' end

local tokens = tonumber(r[2]) or 0
for i = 2, 3 do
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved')) or 0
  local give = math.min(reserved, tokens)
  if give > 0 then redis.call('HINCRBY', KEYS[i], 'reserved', -give) end
  redis.call('HINCRBY', KEYS[i], 'used', ARGV[1])
end
redis.call('EXPIREAT', KEYS[2], ARGV[4])
redis.call('EXPIREAT', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[1], 'state', 'settled', 'actual', ARGV[1])
return 'settled'

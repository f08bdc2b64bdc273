-- Release a reservation, exactly once: give back its tokens and its request count, in the
-- windows the reservation was made in.
--
-- KEYS[1]  reservation hash  <prefix>quota:{<user>}:r:<requestId>
-- KEYS[2]  day hash of the reservation's day
-- KEYS[3]  month hash of the reservation's month
-- ARGV[1]  day the caller read from the reservation    ARGV[2] month likewise
-- ARGV[3]  day key EXPIREAT                             ARGV[4] month key EXPIREAT
--
-- Returns released | already_settled | already_released | unknown_reservation | window_mismatch

local r = redis.call('HMGET', KEYS[1], 'state', 'tokens', 'day', 'month')
local state = r[1]
if not state then return 'unknown_reservation' end
if state == 'settled' then return 'already_settled' end
if state == 'released' then return 'already_released' end
if r[3] ~= ARGV[1] or r[4] ~= ARGV[2] then return 'window_mismatch' end

local tokens = tonumber(r[2]) or 0
for i = 2, 3 do
  local h = redis.call('HMGET', KEYS[i], 'reserved', 'requests')
  local give = math.min(tonumber(h[1]) or 0, tokens)
  if give > 0 then redis.call('HINCRBY', KEYS[i], 'reserved', -give) end
  if (tonumber(h[2]) or 0) > 0 then redis.call('HINCRBY', KEYS[i], 'requests', -1) end
end
redis.call('EXPIREAT', KEYS[2], ARGV[3])
redis.call('EXPIREAT', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'released')
return 'released'

-- Rebuild one user's counters from the durable ledger, once: when the marker already exists
-- another caller rebuilt them first, and nothing changes. All keys carry the user's hash tag.
--
-- KEYS[1]            rebuilt marker    <prefix>quota:{<user>}:rebuilt
-- KEYS[2..1+W]       window hashes (day or month), written with absolute values
-- KEYS[2+W..]        reservation hashes of the user's open requests
-- ARGV[1]  W, the number of window hashes
-- then per window hash: requests, used, reserved, EXPIREAT
-- then per reservation: tokens, day, month, EXPIREAT
--
-- Returns 1 when rebuilt, 0 when the marker was already there.

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local windows = tonumber(ARGV[1])
local a = 2
for i = 2, 1 + windows do
  redis.call('DEL', KEYS[i])
  redis.call('HSET', KEYS[i], 'requests', ARGV[a], 'used', ARGV[a + 1], 'reserved', ARGV[a + 2])
  redis.call('EXPIREAT', KEYS[i], ARGV[a + 3])
  a = a + 4
end
for i = 2 + windows, #KEYS do
  redis.call('HSET', KEYS[i], 'tokens', ARGV[a], 'day', ARGV[a + 1], 'month', ARGV[a + 2], 'state', 'reserved')
  redis.call('EXPIREAT', KEYS[i], ARGV[a + 3])
  a = a + 4
end
redis.call('SET', KEYS[1], '1')
return 1

-- Append a batch of events to a request's stream and tell its live watchers, atomically: a
-- watcher that gets the live message can read every event of it from the stream already.
--
-- KEYS[1]  stream  <prefix>stream:{<requestId>}   entries id <seq>-1, one field e = the event's JSON
-- ARGV[1]  bound: the stream keeps its newest ARGV[1] entries (exact MAXLEN: the bound is a promise
--          to readers, and these streams are small enough that exact trimming costs little)
-- ARGV[2]  TTL in milliseconds, counted from this append
-- ARGV[3]  live channel  <prefix>stream-live:{<requestId>} (not a key: pub/sub channels are not
--          stored, so it is no argument for KEYS)
-- ARGV[4], ARGV[5], ...  pairs: seq, event JSON; seqs strictly increasing (the caller checks)
--
-- An event whose seq is at or below the stream's newest seq is skipped, not an error: a retried
-- append (the first try's answer was lost) then stores nothing twice and fails nothing. The TTL is
-- renewed by every append to a stream that exists, even one that added nothing.
--
-- Publishes the events it added as one JSON array (nothing when it added none); returns how many.

local newest = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  newest = tonumber(string.match(top[1][1], '^(%d+)-'))
end

local added = {}
for i = 4, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > newest then
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[i] .. '-1', 'e', ARGV[i + 1])
    newest = seq
    added[#added + 1] = ARGV[i + 1]
  end
end

redis.call('PEXPIRE', KEYS[1], ARGV[2])
if #added > 0 then
  redis.call('PUBLISH', ARGV[3], '[' .. table.concat(added, ',') .. ']')
end
return #added

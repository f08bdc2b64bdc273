-- Run or cancel, whichever comes first: one request's run state, changed atomically.
-- A cancel of a running request PUBLISHes its id in this same script, so no cancel can be stored
-- without its notice going out (or the notice go out for a cancel that was not stored).
--
-- KEYS[1]  state string  <prefix>run:{<requestId>}    running | cancelling | cancelled
-- ARGV[1]  mode          claim | cancel
-- ARGV[2]  TTL in ms     every write sets it, so no state outlives its last change by more
-- ARGV[3]  channel       <prefix>run-cancels, watched by every worker
-- ARGV[4]  request id    the notice's payload
--
-- claim  returns run | cancelled
-- cancel returns before_start | running | already_cancelled

local state = redis.call('GET', KEYS[1])
local mode = ARGV[1]

if state ~= false and state ~= 'running' and state ~= 'cancelling' and state ~= 'cancelled' then
  return redis.error_reply('unknown run state: ' .. tostring(state))
end

if mode == 'claim' then
  if state == 'cancelled' or state == 'cancelling' then return 'cancelled' end
  -- none, or running: a redelivery after a worker crash must run again; its TTL starts anew
  redis.call('SET', KEYS[1], 'running', 'PX', ARGV[2])
  return 'run'
end

if mode == 'cancel' then
  if state == false then
    redis.call('SET', KEYS[1], 'cancelled', 'PX', ARGV[2])
    return 'before_start'
  end
  if state == 'running' then
    redis.call('SET', KEYS[1], 'cancelling', 'PX', ARGV[2])
    redis.call('PUBLISH', ARGV[3], ARGV[4])
    return 'running'
  end
  return 'already_cancelled'
end

return redis.error_reply('unknown run state mode: ' .. tostring(mode))

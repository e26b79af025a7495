-- Claim an idempotency key (idempotency.try_claim): its stored outcome, or its lease.
--
-- A key with an outcome ends this task: its submit-ledger entry goes too (ledger.py),
-- in the same call. A lease held by the same owner token is taken again (re-entrant).
--
-- KEYS[1]  outcome string               {p}:idem:{k}:out
-- KEYS[2]  lease string (owner token)   {p}:idem:{k}:lease
-- KEYS[3]  failed-attempts list         {p}:idem:{k}:attempts
-- KEYS[4]  submit ledger entries hash   {p}:ledger
-- KEYS[5]  submit ledger kwargs hash    {p}:ledger:kwargs
-- KEYS[6]  submit ledger times zset     {p}:ledger:times
-- ARGV[1]  owner token    ARGV[2] lease ms    ARGV[3] task id ('' for none)
-- Returns {'done', outcome JSON} | {'claimed', failed attempts so far}
--       | {'busy', ms left on the other copy's lease}

local out = redis.call('GET', KEYS[1])
if out then
  if ARGV[3] ~= '' then
    redis.call('HDEL', KEYS[4], ARGV[3])
    redis.call('HDEL', KEYS[5], ARGV[3])
    redis.call('ZREM', KEYS[6], ARGV[3])
  end
  return {'done', out}
end
local holder = redis.call('GET', KEYS[2])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {'claimed', tostring(redis.call('LLEN', KEYS[3]))}
end
return {'busy', tostring(redis.call('PTTL', KEYS[2]))}

-- Store an idempotency key's outcome (idempotency.finish), and end what waited on it.
--
-- The first outcome wins (a copy whose lease lapsed mid-call may finish second), except
-- that a success replaces a dead letter; the stored outcome is returned, so every copy
-- answers the same. The lease goes if still this owner's, the attempt history goes, a
-- success removes the key's dead letter (a replay that worked), and the task's
-- submit-ledger entry ends here.
--
-- KEYS[1]  outcome string               {p}:idem:{k}:out
-- KEYS[2]  lease string (owner token)   {p}:idem:{k}:lease
-- KEYS[3]  failed-attempts list         {p}:idem:{k}:attempts
-- KEYS[4]  dead letter string           {p}:dlq:{id}
-- KEYS[5]  dead-letter index zset       {p}:dlq:index
-- KEYS[6]  submit ledger entries hash   {p}:ledger
-- KEYS[7]  submit ledger kwargs hash    {p}:ledger:kwargs
-- KEYS[8]  submit ledger times zset     {p}:ledger:times
-- ARGV[1]  owner token       ARGV[2] outcome JSON      ARGV[3] outcome TTL, seconds
-- ARGV[4]  dead-letter id to remove ('' keeps it)      ARGV[5] '1' if a success
-- ARGV[6]  task id whose submit-ledger entry ends here ('' for none)
-- Returns the outcome JSON now stored

local out = redis.call('GET', KEYS[1])
if out and ARGV[5] == '1' and string.sub(out, 1, 15) == '{"dead_letter":' then
  out = nil
end
if not out then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  out = ARGV[2]
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[3])
if ARGV[4] ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
end
if ARGV[6] ~= '' then
  redis.call('HDEL', KEYS[6], ARGV[6])
  redis.call('HDEL', KEYS[7], ARGV[6])
  redis.call('ZREM', KEYS[8], ARGV[6])
end
return out

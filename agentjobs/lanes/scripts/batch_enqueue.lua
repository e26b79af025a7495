-- Put one batch-lane request in the state store (records.enqueue).
--
-- One record per custom_id (derived from the idempotency key): a second task of the same
-- key only joins the set of tasks waiting for it. A key that already has an outcome is
-- not queued again: the caller returns that outcome.
--
-- KEYS[1] request records hash     {p}:batch:req
-- KEYS[2] where each request is    {p}:batch:where
-- KEYS[3] the group's pending zset {p}:batch:pending:{group}
-- KEYS[4] the waiting tasks set    {p}:batch:tasks:{cid}
-- KEYS[5] the key's outcome        {p}:idem:{k}:out
-- ARGV[1] custom_id   ARGV[2] record JSON   ARGV[3] now (s)   ARGV[4] task id
-- Returns 1 (queued), 0 (already waiting: joined) or -1 (the key has an outcome)

if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
redis.call('SADD', KEYS[4], ARGV[4])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], 'pending')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1

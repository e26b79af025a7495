-- Look a request up in the response cache (cache.lookup): its stored answer, or the
-- single-flight lock that makes this caller the one to compute it.
--
-- KEYS[1]  cache entry string                      {p}:rc:{tenant}:{sha256}
-- KEYS[2]  its single-flight lock (owner token)    {p}:rc:{tenant}:{sha256}:lock
-- ARGV[1]  lock token    ARGV[2] lock lease ms
-- Returns {1, stored answer JSON} a hit, {2} this caller took the lock,
--         {0} another caller holds it (wait, look again)

local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0}

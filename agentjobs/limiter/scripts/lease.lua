-- Take one concurrency slot of a rate-limit group, as a lease that expires.
--
-- Leases are members of a sorted set scored by their expiry (ms), so a killed worker's
-- slot frees itself once its lease lapses; a live holder releases with ZREM.
--
-- KEYS[1]  leases zset of the group
-- ARGV[1]  now in ms ("" = redis TIME)      ARGV[2] concurrency cap
-- ARGV[3]  lease id                         ARGV[4] lease lifetime, ms
-- Returns {taken 0|1, leases held after the call, ms until the soonest lease lapses}

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local ttl = tonumber(ARGV[4])
if held < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], string.format('%.3f', now + ttl), ARGV[3])
  -- The set lives as long as its longest lease: a short lease taken after a long one
  -- must not shorten it, or the long holder's slot would vanish with the key.
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(last[2]) - now) + 1000)
  return {1, held + 1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, held, math.ceil(tonumber(first[2]) - now)}

-- Hold a call's estimated cost against today's caps (budget.reserve), or only test it
-- (budget.check, at submit).
--
-- Admitted only if spent today + reserved by calls in flight + this estimate <= cap,
-- for the overall cap and the tenant's. Holds of calls that never came back
-- (killed workers) lapse first, a hundred at a time. Time is Redis's (TIME).
--
-- KEYS[1]  day's spend hash (USD floats)          {p}:cost:{day}
-- KEYS[2]  day's reservations hash (nano-USD)     {p}:budget:{day}
-- KEYS[3]  reservation leases zset (expiry ms)    {p}:budget:{day}:leases
-- ARGV[1]  member "{id}\t{tenant}\t{nano}"        ARGV[2] tenant ("(none)" = none)
-- ARGV[3]  the estimate, nano-USD
-- ARGV[4]  overall cap, nano-USD (-1 = none)      ARGV[5] tenant cap, nano-USD (-1 = none)
-- ARGV[6]  lease ms    ARGV[7] TTL of KEYS[2] and KEYS[3], s    ARGV[8] '1' = test only
-- Returns {1} admitted, or {0, which ('overall'|'tenant'), spent nano, reserved nano, cap nano}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
for _, m in ipairs(expired) do
  local tenant, n = string.match(m, '^[^\t]*\t(.*)\t(%d+)$')
  redis.call('HINCRBY', KEYS[2], 'reserved', -tonumber(n))
  redis.call('HINCRBY', KEYS[2], 'reserved:' .. tenant, -tonumber(n))
  redis.call('ZREM', KEYS[3], m)
end
local amount = tonumber(ARGV[3])
local function test(cap, spent_field, reserved_field)
  if cap < 0 then return nil end
  local spent = math.floor(tonumber(redis.call('HGET', KEYS[1], spent_field) or '0') * 1e9)
  local reserved = tonumber(redis.call('HGET', KEYS[2], reserved_field) or '0')
  if spent + reserved + amount > cap then return {spent, reserved, cap} end
  return nil
end
local over = test(tonumber(ARGV[4]), 'usd', 'reserved')
if over then return {0, 'overall', over[1], over[2], over[3]} end
if ARGV[2] ~= '(none)' then
  over = test(tonumber(ARGV[5]), 'usd:tenant:' .. ARGV[2], 'reserved:' .. ARGV[2])
  if over then return {0, 'tenant', over[1], over[2], over[3]} end
end
if ARGV[8] == '1' then return {1} end
redis.call('HINCRBY', KEYS[2], 'reserved', amount)
redis.call('HINCRBY', KEYS[2], 'reserved:' .. ARGV[2], amount)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[7])
return {1}

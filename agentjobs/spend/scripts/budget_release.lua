-- Give a held estimate back (budget.release), once: a lease that already lapsed was
-- subtracted when it lapsed (budget_reserve.lua).
--
-- KEYS[1]  day's reservations hash (nano-USD)     {p}:budget:{day}
-- KEYS[2]  reservation leases zset (expiry ms)    {p}:budget:{day}:leases
-- ARGV[1]  member "{id}\t{tenant}\t{nano}"        ARGV[2] tenant    ARGV[3] nano-USD
-- Returns 1 released, 0 already released or lapsed

if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[3]))
  redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[2], -tonumber(ARGV[3]))
  return 1
end
return 0

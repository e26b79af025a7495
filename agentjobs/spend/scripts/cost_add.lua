-- Add one call to a day's totals (cost.record) in one command: a pipeline of ~17
-- HINCRBYs cost the worker more Python time than the call's whole cost bookkeeping.
--
-- KEYS[1]  day's spend hash                        {p}:cost:{day}
-- ARGV[1]  TTL of KEYS[1], s
-- ARGV[2]  n: the first n (field, amount) pairs are integers (HINCRBY), the rest
--          floats (HINCRBYFLOAT)
-- ARGV[3..] field, amount, field, amount, ...
-- Returns 1

local n = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  if (i - 1) / 2 <= n then
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1

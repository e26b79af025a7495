-- Add one batch of metric increments (metrics.Batch.commit): one round trip.
-- KEYS[1]  all-time hash            {p}:metrics:total
-- KEYS[2]  current-minute hash      {p}:metrics:m:{minute}
-- KEYS[3]  in-flight calls zset     {p}:metrics:inflight
-- ARGV[1]  TTL of the minute hash, seconds
-- ARGV[2]  in-flight member to remove ("" for none)
-- ARGV[3..] field, increment, field, increment, ...
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
if #ARGV > 2 then
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return 1

-- Add one update of metric increments (metrics.Update.commit): one round trip.
-- An update may also mark a Messages API call in flight, or forget one, so the gauge
-- costs no round trip of its own.
-- KEYS[1]  all-time hash            {p}:metrics:total
-- KEYS[2]  current-minute hash      {p}:metrics:m:{minute}
-- KEYS[3]  in-flight calls zset     {p}:metrics:inflight
-- ARGV[1]  TTL of the minute hash, seconds
-- ARGV[2]  in-flight member to remove ("" for none)
-- ARGV[3]  in-flight member to add ("" for none)    ARGV[4] when it goes stale, epoch s
-- ARGV[5..] field, increment, field, increment, ...
for i = 5, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
if #ARGV > 4 then
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('ZREM', KEYS[3], ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
end
return 1

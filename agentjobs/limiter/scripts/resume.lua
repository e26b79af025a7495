-- Lift a group's pause: the schedule moves back by what was left of it.
--
-- A pause (a 429's retry-after, or an operator's) sets pause_until and moves every tat,
-- the booked starts and shift_ms later by how much it grew. Deleting pause_until alone
-- would leave all of that in place, and calls would still wait out the pause. So the
-- part still ahead, `left`, is taken back from each tat (never before now), from
-- shift_ms (sleepers follow it and wake earlier) and from the booked starts.
--
-- KEYS[1]  state hash of the group          KEYS[2]  schedule zset (start ms -> member)
-- ARGV[1]  now in ms ("" = redis TIME)
-- Returns the ms of pause that were left (0: the group was not paused), as a string.

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local untl = tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0
redis.call('HDEL', KEYS[1], 'pause_until', 'pause_reason', 'pause_reason_until')
local left = untl - now
if left <= 0 then return '0' end

for _, dim in ipairs({'rpm', 'itpm', 'otpm'}) do
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat_' .. dim))
  if tat and tat > now then
    redis.call('HSET', KEYS[1], 'tat_' .. dim, string.format('%.3f', math.max(now, tat - left)))
  end
end
local shift = tonumber(redis.call('HGET', KEYS[1], 'shift_ms')) or 0
redis.call('HSET', KEYS[1], 'shift_ms', string.format('%.3f', shift - left))
local rows = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES')
for k = 1, #rows, 2 do
  local start = math.max(now, tonumber(rows[k + 1]) - left)
  redis.call('ZADD', KEYS[2], string.format('%.3f', start), rows[k])
end
return string.format('%.3f', left)

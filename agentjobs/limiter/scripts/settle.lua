-- Settle a reservation after the call: real usage, the server's headers, a 429.
--
-- Corrections move tat by (actual - reserved) * interval (a refund never makes a bucket
-- fuller than full). A header reading `remaining` R pulls the group back so that our
-- own view keeps `headroom` below the server's: tat >= now + burst - (R - unseen) *
-- interval + headroom, where `unseen` is what we reserved for starts still in the
-- future (the server cannot have counted those yet). The floor is a max, not a sum,
-- so many responses reporting the same shortfall pull back once. A 429 pauses the
-- group: every tat moves by how much the pause grew.
--
-- Pull-backs and pauses move the whole schedule: calls already booked (sleeping in
-- their threads) must move too, or they would still start at the old, too-dense
-- pace. The field shift_ms adds up those moves and booked starts in the schedule are
-- moved by the same amount; a sleeper compares shift_ms with its value at booking
-- and sleeps the difference.
--
-- Output corrections move the booked calls too, earlier or later: their starts were
-- spaced by output estimates, and with a backlog many calls are booked seconds ahead,
-- so leaving them where they are lets the errors of every call that ends meanwhile
-- drain or overfill the server's bucket (it debits what was generated). The field
-- oshift_ms adds up (signed) how far corrections moved tat_otpm; a sleeper whose
-- start output decided follows it (schedule scores are not moved for these).
--
-- The call's concurrency lease, when it held one, is given back in the same call
-- (ARGV[22]), a round trip less than a separate ZREM.
--
-- KEYS[1]  state hash of the group          KEYS[2]  schedule zset (start ms -> member
--          "id:input:output")               KEYS[3]  leases zset of the group
-- ARGV[1]  now in ms ("" = redis TIME)      ARGV[2]  burst_ms
-- ARGV[3]  rpm      ARGV[4] itpm      ARGV[5] otpm      (configured, per minute)
-- ARGV[6..8]   corrections for requests, input, output tokens (actual - reserved)
-- ARGV[9..11]  server -remaining for requests, input, output ("" = no header)
-- ARGV[12..14] server -limit for requests, input, output ("" = no header)
-- ARGV[15] headroom_ms
-- ARGV[16] pause_ms: a 429's retry-after, the whole group waits ("" or 0 = none)
-- ARGV[17] input calibration sample (actual / raw estimate, "" = none)
-- ARGV[18] output tokens sample ("" = none)      ARGV[19] EWMA weight of a sample
-- ARGV[20] schedule member of this reservation ("" = none)   ARGV[21] ttl, s
-- ARGV[22] concurrency lease to release ("" = none)
-- Returns {schedule moved by ms (pull-back and pause), dimension pulled back or ""}

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local burst = tonumber(ARGV[2])
local dims = {'rpm', 'itpm', 'otpm'}
if ARGV[20] ~= '' then redis.call('ZREM', KEYS[2], ARGV[20]) end
if ARGV[22] ~= '' then redis.call('ZREM', KEYS[3], ARGV[22]) end
local shift = tonumber(redis.call('HGET', KEYS[1], 'shift_ms')) or 0

local unseen = nil
local function unseen_amounts()
  local sums = {0, 0, 0}
  local members = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
  for _, m in ipairs(members) do
    local a_in, a_out = string.match(m, ':(%d+):(%d+)$')
    sums[1] = sums[1] + 1
    sums[2] = sums[2] + (tonumber(a_in) or 0)
    sums[3] = sums[3] + (tonumber(a_out) or 0)
  end
  return sums
end

local tats, intervals, limits = {}, {}, {}
for i = 1, 3 do
  local limit = tonumber(ARGV[2 + i])
  local server_limit = tonumber(ARGV[11 + i])
  if server_limit and server_limit > 0 then
    redis.call('HSET', KEYS[1], 'srv_' .. dims[i], server_limit)
  else
    server_limit = tonumber(redis.call('HGET', KEYS[1], 'srv_' .. dims[i]))
  end
  if server_limit and server_limit > 0 and server_limit < limit then limit = server_limit end
  intervals[i] = 60000 / limit
  tats[i] = tonumber(redis.call('HGET', KEYS[1], 'tat_' .. dims[i])) or 0
end
local olds = {tats[1], tats[2], tats[3]}

local pulled, pulled_dim, omoved = 0, '', 0
for i = 1, 3 do
  local delta = tonumber(ARGV[5 + i]) or 0
  if delta ~= 0 then
    local from = math.max(tats[i], now)
    tats[i] = math.max(now, from + delta * intervals[i])
    if i == 3 then omoved = tats[i] - from end
  end
  local remaining = tonumber(ARGV[8 + i])
  if remaining then
    if unseen == nil then unseen = unseen_amounts() end
    local floor = now + burst + tonumber(ARGV[15]) - (remaining - unseen[i]) * intervals[i]
    if floor > tats[i] then
      if floor - tats[i] > pulled then pulled, pulled_dim = floor - tats[i], dims[i] end
      tats[i] = floor
    end
  end
end
if omoved ~= 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'oshift_ms', string.format('%.3f', omoved))
end
local moved = pulled
if pulled > 0 then
  redis.call('HINCRBY', KEYS[1], 'pullbacks', 1)
  redis.call('HINCRBYFLOAT', KEYS[1], 'pullback_ms', string.format('%.3f', pulled))
end

local pause_ms = tonumber(ARGV[16]) or 0
if pause_ms > 0 then
  redis.call('HINCRBY', KEYS[1], 'rate_limited', 1)
  local old_until = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0)
  local grown = now + pause_ms - old_until
  if grown > 0 then
    -- Several 429s at once pause once: only the growth of the pause moves the schedule.
    redis.call('HSET', KEYS[1], 'pause_until', string.format('%.3f', now + pause_ms))
    for i = 1, 3 do tats[i] = math.max(tats[i], now) + grown end
    moved = moved + grown
  end
end
for i = 1, 3 do
  if tats[i] ~= olds[i] then
    redis.call('HSET', KEYS[1], 'tat_' .. dims[i], string.format('%.3f', tats[i]))
  end
end
if moved > 0 then
  redis.call('HSET', KEYS[1], 'shift_ms', string.format('%.3f', shift + moved))
  -- The calls still booked ahead move too (their sleepers follow shift_ms).
  local rows = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES')
  for k = 1, #rows, 2 do
    redis.call('ZADD', KEYS[2], string.format('%.3f', tonumber(rows[k + 1]) + moved), rows[k])
  end
end

local alpha = tonumber(ARGV[19])
local sample = tonumber(ARGV[17])
if sample then
  local ratio = tonumber(redis.call('HGET', KEYS[1], 'in_ratio'))
  ratio = ratio and (ratio * (1 - alpha) + sample * alpha) or sample
  ratio = math.min(5, math.max(0.2, ratio))
  redis.call('HSET', KEYS[1], 'in_ratio', string.format('%.5f', ratio))
end
sample = tonumber(ARGV[18])
if sample then
  local ewma = tonumber(redis.call('HGET', KEYS[1], 'out_ewma'))
  local dev = tonumber(redis.call('HGET', KEYS[1], 'out_dev'))
  if ewma then
    dev = (dev or 0) * (1 - alpha) + math.abs(sample - ewma) * alpha
    ewma = ewma * (1 - alpha) + sample * alpha
  else
    ewma, dev = sample, sample / 2  -- one sample says little about the spread
  end
  redis.call('HSET', KEYS[1], 'out_ewma', string.format('%.3f', ewma),
    'out_dev', string.format('%.3f', dev))
end

local ttl = tonumber(ARGV[21])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {math.floor(moved), pulled_dim}

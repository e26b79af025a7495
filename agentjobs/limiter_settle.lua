-- Settle a reservation after the call: real usage, the server's headers, a 429.
--
-- Corrections move tat by (actual - reserved) * interval (a refund never makes a bucket
-- fuller than full). A header reading `remaining` R pulls the group back so that our
-- own view keeps `headroom` below the server's: tat >= now + burst - (R - unseen) *
-- interval + headroom, where `unseen` is what we reserved for starts still in the
-- future (the server cannot have counted those yet). The floor is a max, not a sum,
-- so many responses reporting the same shortfall pull back once.
--
-- KEYS[1]  state hash of the group          KEYS[2]  schedule zset (start ms -> member)
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
-- Returns {pulled back ms (largest over the dimensions), dimension pulled back or ""}

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

local pulled, pulled_dim = 0, ''
for i = 1, 3 do
  local field = 'tat_' .. dims[i]
  local limit = tonumber(ARGV[2 + i])
  local server_limit = tonumber(ARGV[11 + i])
  if server_limit and server_limit > 0 then
    redis.call('HSET', KEYS[1], 'srv_' .. dims[i], server_limit)
    if server_limit < limit then limit = server_limit end
  else
    local known = tonumber(redis.call('HGET', KEYS[1], 'srv_' .. dims[i]))
    if known and known > 0 and known < limit then limit = known end
  end
  local interval = 60000 / limit
  local old = tonumber(redis.call('HGET', KEYS[1], field)) or 0
  local tat = old
  local delta = tonumber(ARGV[5 + i]) or 0
  if delta ~= 0 then
    tat = math.max(now, math.max(tat, now) + delta * interval)
  end
  local remaining = tonumber(ARGV[8 + i])
  if remaining then
    if unseen == nil then unseen = unseen_amounts() end
    local floor = now + burst + tonumber(ARGV[15]) - (remaining - unseen[i]) * interval
    if floor > tat then
      if floor - tat > pulled then pulled, pulled_dim = floor - tat, dims[i] end
      tat = floor
    end
  end
  if tat ~= old then redis.call('HSET', KEYS[1], field, string.format('%.3f', tat)) end
end
if pulled > 0 then
  redis.call('HINCRBY', KEYS[1], 'pullbacks', 1)
  redis.call('HINCRBYFLOAT', KEYS[1], 'pullback_ms', string.format('%.3f', pulled))
end

local pause_ms = tonumber(ARGV[16]) or 0
if pause_ms > 0 then
  local until_ms = now + pause_ms
  local old = tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0
  if until_ms > old then redis.call('HSET', KEYS[1], 'pause_until', string.format('%.3f', until_ms)) end
  redis.call('HINCRBY', KEYS[1], 'rate_limited', 1)
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
  ewma = ewma and (ewma * (1 - alpha) + sample * alpha) or sample
  redis.call('HSET', KEYS[1], 'out_ewma', string.format('%.3f', ewma))
end

local ttl = tonumber(ARGV[21])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {math.floor(pulled), pulled_dim}

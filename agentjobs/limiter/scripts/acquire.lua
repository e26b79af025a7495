-- Reserve one request's RPM, ITPM and OTPM capacity in a rate-limit group (GCRA).
--
-- Each dimension keeps a theoretical arrival time (tat, ms): the bucket is full when
-- tat <= now and empty when tat = now + burst. A request of `a` units may start at
-- tat - burst + min(a, cap) * interval (output in real-time accounting: 1 * interval);
-- it starts at the latest of those three times
-- (and of a 429 pause), all three buckets are debited at that start, and the caller
-- sleeps until then. tat only grows, so starts are handed out first come, first served.
--
-- The same call answers two more questions, each a round trip less per task:
-- - a refusing key (KEYS[4], the group's spend-limit pause): while it is set, nothing
--   is reserved and its value is returned as the reason;
-- - a concurrency slot (ARGV[13], ARGV[14]): a call that may start now takes its lease
--   here (as lease.lua does). A call that must first sleep takes none: it would hold a
--   slot while not calling; it leases with lease.lua once awake.
--
-- KEYS[1]  state hash of the group          KEYS[2]  schedule zset (start ms -> member)
-- KEYS[3]  leases zset of the group         KEYS[4]  refusing key (optional)
-- ARGV[1]  now in ms ("" = redis TIME; tests inject a clock)
-- ARGV[2]  burst_ms
-- ARGV[3]  rpm      ARGV[4] itpm      ARGV[5] otpm      (configured, per minute)
-- ARGV[6]  input tokens before calibration (chars-based estimate)
-- ARGV[7]  max_tokens                 ARGV[8] output estimate before any sample
-- ARGV[9]  output mode: "realtime" (reserve an estimate) | "max_tokens" (reserve max_tokens)
-- ARGV[10] max_wait_ms: a longer wait reserves nothing and reports the wait
-- ARGV[11] reservation id (also the lease member)   ARGV[12] ttl of both keys, s
-- ARGV[13] concurrency cap ("" = take no lease)      ARGV[14] lease lifetime, ms
-- Returns {admitted 0|1, wait_us, input_reserved, output_reserved, binding dimension
--          ("refused" when the refusing key is set), start ms as a string, the group's
--          schedule shift ms as a string, the group's output-correction shift ms as a
--          string, lease taken 0|1, ms until the soonest lease lapses (when a lease was
--          wanted and none was free), the refusing key's value ("" = not refused)}
--
-- The shift (field shift_ms) grows whenever settle moves the whole schedule later (a
-- pull-back or a 429 pause); a caller that slept compares it with the value returned
-- here and sleeps the difference, so calls booked earlier move along with it. The
-- output shift (field oshift_ms) is the signed sum of what real output corrections
-- moved tat_otpm by: a sleeper whose start output decided follows it too, earlier or
-- later (see settle.lua).

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
if KEYS[4] then
  local reason = redis.call('GET', KEYS[4])
  if reason then return {0, 0, 0, 0, 'refused', '0', '0', '0', 0, 0, reason} end
end
local burst = tonumber(ARGV[2])
local st = redis.call('HMGET', KEYS[1], 'tat_rpm', 'tat_itpm', 'tat_otpm', 'pause_until',
  'in_ratio', 'out_ewma', 'srv_rpm', 'srv_itpm', 'srv_otpm', 'shift_ms', 'oshift_ms')
local shift = st[10] or '0'
local oshift = st[11] or '0'

local in_amount = math.max(1, math.ceil(tonumber(ARGV[6]) * (tonumber(st[5]) or 1)))
local max_tokens = tonumber(ARGV[7])
local out_amount = max_tokens
local realtime = ARGV[9] ~= 'max_tokens'
if realtime then
  -- The mean of recent outputs, an unbiased guess: the real output corrects tat when
  -- the call ends and moves the calls booked ahead with it (oshift_ms), so a margin
  -- (mean + deviation) would only space booked starts too far apart.
  local mean = tonumber(st[6]) or tonumber(ARGV[8])
  out_amount = math.min(max_tokens, math.ceil(mean))
end
local amounts = {1, in_amount, out_amount}
local dims = {'rpm', 'itpm', 'otpm'}

local start, binding = now, 'none'
local pause = tonumber(st[4]) or 0
if pause > start then start, binding = pause, 'pause' end
local tats, intervals = {}, {}
for i = 1, 3 do
  local limit = tonumber(ARGV[2 + i])
  local server = tonumber(st[6 + i])  -- the server's -limit header wins when lower
  if server and server > 0 and server < limit then limit = server end
  local interval = 60000 / limit
  local cap = math.max(1, limit * burst / 60000)
  local tat = tonumber(st[i]) or 0
  local need = math.min(amounts[i], cap)
  -- Real-time output accounting refuses only an empty bucket: a call needs 1 token of
  -- room, and what it reserves may run the bucket into debt, as on the server.
  if i == 3 and realtime then need = 1 end
  local allow = tat - burst + need * interval
  if allow > start then start, binding = allow, dims[i] end
  tats[i], intervals[i] = tat, interval
end

local wait = start - now
if wait > tonumber(ARGV[10]) then
  redis.call('HINCRBY', KEYS[1], 'deferred', 1)
  return {0, math.floor(wait * 1000), in_amount, out_amount, binding,
    string.format('%.3f', start), shift, oshift, 0, 0, ''}
end
for i = 1, 3 do
  local tat = math.max(tats[i], start) + amounts[i] * intervals[i]
  redis.call('HSET', KEYS[1], 'tat_' .. dims[i], string.format('%.3f', tat))
end
redis.call('HINCRBY', KEYS[1], 'admitted', 1)
redis.call('HINCRBYFLOAT', KEYS[1], 'wait_ms', string.format('%.3f', wait))
-- The schedule lets a header reading tell apart reservations the server has not seen yet.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
redis.call('ZADD', KEYS[2], string.format('%.3f', start),
  ARGV[11] .. ':' .. in_amount .. ':' .. out_amount)
local ttl = tonumber(ARGV[12])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)

local wait_us = math.floor(wait * 1000)
local leased, lapse = 0, 0
if ARGV[13] ~= '' and wait_us == 0 then
  local lease_ms = tonumber(ARGV[14])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) < tonumber(ARGV[13]) then
    redis.call('ZADD', KEYS[3], string.format('%.3f', now + lease_ms), ARGV[11])
    -- As long as its longest lease (lease.lua says why).
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(last[2]) - now) + 1000)
    leased = 1
  else
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    lapse = math.ceil(tonumber(first[2]) - now)
  end
end
return {1, wait_us, in_amount, out_amount, binding,
  string.format('%.3f', start), shift, oshift, leased, lapse, ''}

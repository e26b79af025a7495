-- Write a session record with its version check (redis_store.RedisSessionStore).
--
-- The record hash holds the record JSON, its summary (what `list` shows), its version,
-- its status (a position among KEYS[3..8]) and the token of the write that stored it.
-- A write whose reply was lost is sent again with the same token: finding its own token
-- and version in place, it answers 'ok' instead of a conflict with itself.
--
-- KEYS[1]     record hash                          {p}:session:{id}
-- KEYS[2]     every session, by created_at         {p}:sessions
-- KEYS[3..8]  one zset per status, by created_at   {p}:sessions:status:{status}
--             (in the order of agentjobs.agents.store.STATUSES)
-- ARGV[1] 'create' | 'put'    ARGV[2] version the writer read (put)
-- ARGV[3] record JSON (its version already the new one)    ARGV[4] summary JSON
-- ARGV[5] status position, 1..6    ARGV[6] created_at (score)
-- ARGV[7] TTL ms, or 0 for none (a session not ended: running or waiting_approval)
-- ARGV[8] write token    ARGV[9] session id
-- Returns {'ok'} | {'exists'} | {'missing'} | {'conflict', stored version}

local new_version = ARGV[1] == 'create' and 1 or tonumber(ARGV[2]) + 1
local stored = redis.call('HMGET', KEYS[1], 'version', 'status', 'writer')
if stored[1] then
  if stored[3] == ARGV[8] and tonumber(stored[1]) == new_version then
    return {'ok'}  -- this very write, sent again after its reply was lost
  end
  if ARGV[1] == 'create' then
    return {'exists'}
  end
  if tonumber(stored[1]) ~= tonumber(ARGV[2]) then
    return {'conflict', stored[1]}
  end
elseif ARGV[1] == 'put' then
  return {'missing'}
end

redis.call('HSET', KEYS[1], 'version', new_version, 'record', ARGV[3], 'summary', ARGV[4],
  'status', ARGV[5], 'writer', ARGV[8])
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  -- Not ended: no TTL (a session waiting for a person is never dropped); PERSIST
  -- also clears the TTL of a final record re-opened by a replay.
  redis.call('PERSIST', KEYS[1])
end

-- The indexes: the session under its created_at, and under its status only. They live
-- as long as their longest-lived member could: no TTL once a member is not ended
-- (kept so: PTTL -1 is left alone), else a write pushes their TTL out, never in
-- (should the retention have been shortened since); members of expired records are
-- dropped by `list`, each create and the workers' prune (redis_store.py).
local function index(k)
  local left = redis.call('PTTL', k)  -- -2: no key yet, -1: no TTL
  redis.call('ZADD', k, ARGV[6], ARGV[9])
  if ttl == 0 then
    redis.call('PERSIST', k)
  elseif left == -2 or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', k, ttl)
  end
end
index(KEYS[2])
local now = tonumber(ARGV[5])
local was = tonumber(stored[2])
if was and was ~= now then
  redis.call('ZREM', KEYS[2 + was], ARGV[9])
end
index(KEYS[2 + now])
return {'ok'}

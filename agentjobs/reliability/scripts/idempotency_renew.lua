-- Renew an idempotency lease (the heartbeat), only while it is still this owner's.
--
-- KEYS[1]  lease string (owner token)   {p}:idem:{k}:lease
-- ARGV[1]  owner token    ARGV[2] lease ms
-- Returns 1 renewed, 0 lost (lapsed, maybe taken by another copy)

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0

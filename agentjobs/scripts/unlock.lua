-- Give up a lock or lease: delete it only while it still holds the caller's token.
--
-- The holder's lease may have lapsed and another caller taken the key since: a plain
-- DEL would free that caller's lock. Used by store.unlock (the idempotency lease, the
-- response cache's single-flight lock, the ledger sweeper's lock).
--
-- KEYS[1]  the lock or lease (a string holding its owner's token)
-- ARGV[1]  the caller's token
-- Returns 1 deleted, 0 not held by this token (lapsed, or another's)

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0

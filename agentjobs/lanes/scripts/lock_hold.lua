-- Take or renew the batch lane's lock: one worker's batcher and poller run at a time.
-- KEYS[1] the lock ({p}:batch:lock)
-- ARGV[1] this runner's token   ARGV[2] lifetime, ms
-- Returns 1 while the lock is this runner's (renewed or taken), 0 when another holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0

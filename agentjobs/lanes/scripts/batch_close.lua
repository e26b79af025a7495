-- End one batch-lane request whose outcome is stored (records.close).
--
-- The tasks given were answered; a task that joined meanwhile stays, and is returned so
-- that it is answered too. Once none is left the request's records go.
--
-- KEYS[1] request records hash  {p}:batch:req
-- KEYS[2] where hash            {p}:batch:where
-- KEYS[3] waiting tasks set     {p}:batch:tasks:{cid}
-- ARGV[1] custom_id   ARGV[2..] the task ids answered
-- Returns the task ids still waiting (empty once closed)

for i = 2, #ARGV do redis.call('SREM', KEYS[3], ARGV[i]) end
local left = redis.call('SMEMBERS', KEYS[3])
if #left == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3])
end
return left

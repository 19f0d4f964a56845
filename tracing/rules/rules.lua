-- The rule engine's state operations for a batch, in one call (driven by tracing/rules/alerts.py).
--
-- One script for every rule-state operation of a batch. KEYS[j] is the key of op j; ARGV = now_ms and a
-- JSON array with [name, a1, a2, a3] per op (one argument: packing thousands of arguments costs more).
--
-- * ``occ`` (occupancy set): add stay a1 ending a2, drop ended stays, count open ones, keep TTL >= a3 ms.
-- * ``out``: a check-out moves stay a1's end to a2 (or removes it when already over).
-- * ``last``: a1 = "at,lat,lon,venue"; answers the previous check-in (or, for the same check-in delivered
--   again, the one before it) and remembers the newer one for a2 ms.
-- * ``dd``: dedupe, ``SET a1 NX GET EX a2``: false when this call won the key, else the winner's value.
-- * ``cap``: the venue hash's capacity field ("" when absent).
-- * ``xadd``: publish alert JSON a2 (community a1) to the stream, ``MAXLEN ~ a3``.
local now = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[2])
local out = {}
for j = 1, #KEYS do
  local k = KEYS[j]
  local op, a1, a2, a3 = ops[j][1], ops[j][2], ops[j][3], ops[j][4]
  if op == 'occ' then
    redis.call('ZADD', k, a2, a1)
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    out[j] = redis.call('ZCOUNT', k, '(' .. now, '+inf')
    if redis.call('PTTL', k) < tonumber(a3) then
      redis.call('PEXPIRE', k, a3)
    end
  elseif op == 'out' then
    if tonumber(a2) > now then
      redis.call('ZADD', k, 'XX', a2, a1)
    else
      redis.call('ZREM', k, a1)
    end
    out[j] = 0
  elseif op == 'last' then
    local at, vid = string.match(a1, '^([^,]*),[^,]*,[^,]*,([^,]*)$')
    local cur = redis.call('GET', k)
    if not cur then
      redis.call('SET', k, a1 .. '|', 'PX', a2)
      out[j] = false
    else
      local sep = string.find(cur, '|', 1, true)
      local head = string.sub(cur, 1, sep - 1)
      local before = string.sub(cur, sep + 1)
      local cat, cvid = string.match(head, '^([^,]*),[^,]*,[^,]*,([^,]*)$')
      if cat == at and cvid == vid then
        if before == '' then out[j] = false else out[j] = before end
      else
        if tonumber(at) >= tonumber(cat) then
          redis.call('SET', k, a1 .. '|' .. head, 'PX', a2)
        end
        out[j] = head
      end
    end
  elseif op == 'dd' then
    local prev = redis.call('SET', k, a1, 'NX', 'GET', 'EX', a2)
    out[j] = prev
  elseif op == 'cap' then
    out[j] = redis.call('HGET', k, 'capacity') or ''
  elseif op == 'xadd' then
    out[j] = redis.call('XADD', k, 'MAXLEN', '~', a3, '*', 'c', a1, 'a', a2)
  end
end
return out

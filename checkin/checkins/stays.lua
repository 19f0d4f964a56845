-- One place at a time: each person's recent stays, and the ends they give each other
-- (docs/ARCHITECTURE.md, "Stays and contacts"). Prepended to checkin.lua, checkout.lua and
-- reevaluate.lua when they are loaded (checkin/checkins/scripts.py).
--
-- A stay ends at the earliest of its own end (the natural end at + dwell, or the check-out) and
-- the start of the person's next stay anywhere. Every stay of a person started in the last
-- `keep` ms (the longest a scan may be backdated plus the longest stay) is kept in the sorted set
-- <stays prefix><person id>, score = start, so a scan that arrives late finds the stay before it
-- (which it ends) and the stay after it (which ends it) exactly as if it had come in time.
--
-- Member: base end | base kind | row version | end | head | tail, where
--   base end   the stay's own end (natural, or the check-out instant), base kind '' or 'checkout',
--   end        min(base end, start of the person's next stay),
--   head, tail the stay's scan line around end_at (checkin/platform/scan_stream.py's LAYOUT:
--              head = checkin_id .. at, tail = dwell_s .. received_at), so an end row can be
--              written for a stay whose check-in record has expired.
-- An end row is the stay's line with the next version (255 at most), the new end_at and
-- ended_by; ClickHouse keeps the highest version (tracing/storage/schema.py).

local MAX_ROW_VERSION = 255

local function stay_parse(m)
  local base, bkind, ver, e, head, tail = string.match(m, '^(%d+)|([%a_]*)|(%d+)|(%d+)|([^|]*)|(.*)$')
  return {base = tonumber(base), bkind = bkind, ver = tonumber(ver), e = tonumber(e), head = head,
    tail = tail, m = m}
end

local function stay_member(s)
  return table.concat({string.format('%d', s.base), s.bkind, string.format('%d', s.ver),
    string.format('%d', s.e), s.head, s.tail}, '|')
end

local function stay_ended_by(s)
  if s.e < s.base then return 'next_stay' end
  return s.bkind
end

local function stay_row(s)
  return table.concat({string.format('%d', s.ver), s.head, string.format('%d', s.e), s.tail,
    stay_ended_by(s)}, '\t')
end

-- Replace a stay's member after its end or base changed, and write its end row to `stream`.
local function stay_rewrite(key, score, s, stream)
  s.ver = math.min(s.ver + 1, MAX_ROW_VERSION)
  redis.call('ZREM', key, s.m)
  s.m = stay_member(s)
  redis.call('ZADD', key, score, s.m)
  redis.call('XADD', stream, '*', 'scan', stay_row(s))
end

-- The start of the person's first stay strictly after `at`, or nil.
local function stay_next_start(key, at_s)
  local nxt = redis.call('ZRANGEBYSCORE', key, '(' .. at_s, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if nxt[1] then return tonumber(nxt[2]) end
  return nil
end

-- The person's stay of check-in `cid` starting at `at_s` (its member parsed), or nil.
local function stay_find(key, at_s, cid)
  local prefix = cid .. '\t'
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, at_s, at_s)) do
    local s = stay_parse(m)
    if string.sub(s.head, 1, #prefix) == prefix then return s end
  end
  return nil
end

-- Open a stay of one person: end the stays just before it that run past its start, and cut it
-- at the person's next stay. Returns the stay (its end and ended_by are those of its check-in row).
-- `now` and `keep` (ms) trim stays too old to matter; the caller sets the key's expiry.
local function stay_open(key, at, at_s, base_end, head, tail, stream, now, keep)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', now - keep))
  local s = {base = base_end, bkind = '', ver = 0, e = base_end, head = head, tail = tail}
  local nxt = stay_next_start(key, at_s)
  if nxt and nxt < s.e then s.e = nxt end
  -- the latest stays that start before this one (several only when they share their start)
  local before = redis.call('ZREVRANGEBYSCORE', key, '(' .. at_s, '-inf', 'WITHSCORES', 'LIMIT', 0, 4)
  if before[1] then
    local score = before[2]
    local members = {}
    if before[8] and before[8] == score then
      members = redis.call('ZRANGEBYSCORE', key, score, score)
    else
      for i = 1, #before, 2 do
        if before[i + 1] == score then members[#members + 1] = before[i] end
      end
    end
    for _, m in ipairs(members) do
      local p = stay_parse(m)
      if p.e > at then
        p.e = at
        stay_rewrite(key, score, p, stream)
      end
    end
  end
  s.m = stay_member(s)
  redis.call('ZADD', key, at_s, s.m)
  return s
end

-- A check-out at `c` of the person's stay (found by stay_find): the check-out replaces the base
-- end, the next stay still cuts it. Writes an end row only when the end or its cause changed.
local function stay_check_out(key, at_s, s, c, stream)
  local before_e, before_by = s.e, stay_ended_by(s)
  s.base, s.bkind = c, 'checkout'
  s.e = c
  local nxt = stay_next_start(key, at_s)
  if nxt and nxt < s.e then s.e = nxt end
  if s.e ~= before_e or stay_ended_by(s) ~= before_by then
    stay_rewrite(key, at_s, s, stream)
  else
    redis.call('ZREM', key, s.m)
    s.m = stay_member(s)
    redis.call('ZADD', key, at_s, s.m)
  end
  return s
end

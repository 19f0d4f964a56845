-- The phone's home in one call (checkin/residents/home.py): the health code of a resident and of each
-- person they may check in, on a single Redis node (the names of the keys are built here from the
-- prefixes, as the check-in script does; a Redis Cluster is read with a pipeline instead).
--
-- ARGV: person id, now (ms), hot-state prefix, person-stays prefix, person prefix ("<prefix>person:"),
--       venue prefix ("<prefix>venue:"), stream shards
-- Returns {pending guardians, me, dependant...}; each person is
--   {person id, st, sr, su, nt, pt, nm, tv, unread notices, check-in id, venue id, start, end, venue name}
-- with the last five false when no stay is open.

local pid, now = ARGV[1], tonumber(ARGV[2])
local pstate, stays, person, venue, shards = ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])

-- The newest stay that has begun, from the person's kept stays (checkin/checkins/stays.lua): the
-- string of ';'-separated entries start|base end|kind|version|end|..., where ... is the stay's scan
-- line or check-in id|venue id|the line's tail; or, kept from before that layout, the members of a
-- sorted set (base end|kind|version|end|check-in id TAB person TAB venue TAB start|tail).
local function newest(members, text)
  local best = nil
  local function consider(start, e, cid, vid)
    if start and start <= now and (not best or start > best[3]) then best = {cid, vid, start, e} end
  end
  for i = 1, #members, 2 do
    local e, cid, vid, start = string.match(members[i], '^%d+|[%a_]*|%d+|(%d+)|([^\t|]*)\t%d+\t(%d+)\t(%d+)|')
    if e then consider(tonumber(start), tonumber(e), cid, tonumber(vid)) end
  end
  if text then
    for entry in string.gmatch(text, '[^;]+') do
      local start, e, rest = string.match(entry, '^(%d+)|%d+|[%a_]*|%d+|(%d+)|(.*)$')
      if start then
        -- the rest is the stay's scan line (version TAB check-in id TAB person TAB venue ...), or
        -- check-in id|venue id|the line's tail
        local cid, vid = string.match(rest, '^([^|\t]*)|(%d+)|')
        if not cid then cid, vid = string.match(rest, '^%d+\t([^\t]*)\t%d+\t(%d+)\t') end
        if cid then consider(tonumber(start), tonumber(e), cid, tonumber(vid)) end
      end
    end
  end
  return best
end

local function read(p)
  local s = redis.call('HMGET', pstate .. p, 'st', 'sr', 'su', 'nt', 'pt', 'nm', 'cmp', 'tv')
  local unread = 0
  for _, v in ipairs(redis.call('HVALS', person .. p .. ':notices')) do
    if not string.find(v, '"acked_at"', 1, true) then unread = unread + 1 end
  end
  local row = {p, s[1], s[2], s[3], s[4], s[5], s[6], s[8], unread, false, false, false, false, false}
  local kept, text, members = stays .. p, nil, {}
  local kind = redis.call('TYPE', kept)['ok']
  if kind == 'string' then
    text = redis.call('GET', kept)
  elseif kind == 'zset' then
    members = redis.call('ZREVRANGEBYSCORE', kept, '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 4)
  end
  local stay = newest(members, text)
  if stay and stay[4] > now then
    local name = redis.call('HGET', venue .. '{' .. (stay[2] % shards) .. '}:' .. stay[2], 'name')
    row[10], row[11], row[12], row[13], row[14] = stay[1], stay[2], stay[3], stay[4], name
  end
  return row, s[7]
end

local me, cmp = read(pid)
local out = {redis.call('SCARD', person .. pid .. ':pending-guardians'), me}
if cmp then
  for dep in string.gmatch(cmp, '%d+') do
    out[#out + 1] = (read(dep))
  end
end
return out

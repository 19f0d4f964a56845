-- Check-ins at venues of ONE stream shard, in one call (driven by checkin/checkins.py).
--
-- Every key arrives in KEYS or, for records of earlier check-ins, is the record prefix in ARGV and a
-- check-in id (names are built by checkin/platform/redis_keys.py) and shares the shard's hash tag.
-- The stream entry (one `scan` field, tab-separated values in the order of
-- checkin/platform/scan_stream.py's LAYOUT; tests/test_scan_line.py pins it) is written below.
--
-- KEYS  [1] stream, [2] resident rate counter, [3] client-address rate counter,
--       then per item: venue hash, day-entries hash, new check-in record, the owner's dedupe
--       hash (fields c:<client id> -> check-in id, v:<venue id> -> "check-in id|scan instant"),
--       then one pstate hash per person.
-- ARGV  [1] now (unix ms), [2] resident limit (0 = no check), [3] address limit (0 = no check),
--       [4] rate window (ms), [5] colour of unknown persons, [6] flags: "l" = lite (skip the
--       test-result lookup), "b" = brief (answer ids only), [7] record TTL (s), [8] item count,
--       [9] repeat window (ms: the same owner at the same venue within it is the same check-in),
--       [10] lifetime of a day-entries hash (s), [11] record key prefix of this shard,
--       then per item: venue id, code version ('' = any), scan instant (ms), new check-in id,
--       client id ('' = none), source, lat, lon, accuracy, the owner's token version ('' = not
--       checked: an id card), person count, person ids (owner first).
--
-- Every redis.call costs more than its command here, so the script makes as few as it can:
-- one HMGET for both dedupe checks, one HSET for both dedupe marks, each person's state read
-- once a call, each owner's dedupe hash given its expiry once a call.
--
-- Reply: {'rate', 'resident'|'address'} when a limit is hit (nothing written), else
-- {'items', code, payload, code, payload, ...} with code one of
--   ok      payload = the check-in record (JSON), or its id in brief mode
--   dup     the earlier check-in (same client id, or same owner and venue within 60 s)
--   unknown / inactive / old_code   (payload = venue name)
--   foreign (payload = the person id that is not a companion of the owner)
--   revoked (the owner's credential carries a token version older than the person's: nothing written)

local now = tonumber(ARGV[1])
local now_s = ARGV[1]
local window = tonumber(ARGV[4])

local function over(key, limit)
  if limit <= 0 then return false end
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window) end
  return n > limit
end

if over(KEYS[2], tonumber(ARGV[2])) then return {'rate', 'resident'} end
if over(KEYS[3], tonumber(ARGV[3])) then return {'rate', 'address'} end

local unknown = ARGV[5]
local lite = string.find(ARGV[6], 'l', 1, true) ~= nil
local brief = string.find(ARGV[6], 'b', 1, true) ~= nil
local ttl = tonumber(ARGV[7])
local nitems = tonumber(ARGV[8])
local repeat_ms = tonumber(ARGV[9])
local day_ttl = tonumber(ARGV[10])
local records = ARGV[11]
local stream = KEYS[1]

local function earlier(cid)
  local rec = redis.call('GET', records .. cid)
  if not rec then return nil end
  if brief then return cid end
  return rec
end

-- Within one call (a batch is one owner's queue) the persons' hot state does not change and
-- the owner's dedupe hash needs its expiry once: both are remembered per key.
local states = {}
local function state(key)
  local s = states[key]
  if not s then
    s = redis.call('HMGET', key, 'st', 'nt', 'pt', 'wl', 'nm', 'cmp', 'tv')
    states[key] = s
  end
  return s
end
local touched = {}

local function one(k, a)
  local vkey, dkey, rkey, okey = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local vid, cv, at_s, cid, client = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local src, lat, lon, acc = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local tv = ARGV[a + 9]
  local np = tonumber(ARGV[a + 10])
  local owner = ARGV[a + 11]
  local at = tonumber(at_s)

  local own_state = state(KEYS[k + 4])
  if tv ~= '' and (tonumber(own_state[7] or '0') or 0) > tonumber(tv) then return 'revoked', '' end

  local v = redis.call('HMGET', vkey, 'active', 'code_version', 'district', 'street', 'community',
    'lat', 'lon', 'dwell_minutes', 'requires_negative_test_hours', 'name')
  if not v[1] then return 'unknown', '' end
  local vname = v[10] or ''
  if v[1] ~= '1' then return 'inactive', vname end
  if cv ~= '' and v[2] ~= cv then return 'old_code', vname end

  local cfield = 'c:' .. client
  local vfield = 'v:' .. vid
  local seen = redis.call('HMGET', okey, cfield, vfield)
  if client ~= '' and seen[1] then
    local rec = earlier(seen[1])
    if rec then return 'dup', rec end
  end
  local recent = seen[2]
  if recent then
    local sep = string.find(recent, '|', 1, true)
    if sep then
      local pcid = string.sub(recent, 1, sep - 1)
      local pat = tonumber(string.sub(recent, sep + 1)) or 0
      if math.abs(pat - at) < repeat_ms then
        local rec = earlier(pcid)
        if rec then
          if client ~= '' then redis.call('HSET', okey, cfield, pcid) end
          return 'dup', rec
        end
      end
    end
  end

  if np > 1 then
    local cmp = own_state[6] or ''
    for j = 2, np do
      local pid = ARGV[a + 10 + j]
      if not string.find(cmp, ',' .. pid .. ',', 1, true) then return 'foreign', pid end
    end
  end

  local dw = (tonumber(v[8] or '') or 60) * 60
  local dw_s = string.format('%d', dw)
  local end_s = string.format('%d', at + dw * 1000)
  local rnt = tonumber(v[9] or '')
  local d, s, c = v[3] or '', v[4] or '', v[5] or ''
  local vlat, vlon = v[6] or '', v[7] or ''
  local people = {}
  for j = 1, np do
    local pid = ARGV[a + 10 + j]
    local ps = own_state
    if j > 1 then ps = state(KEYS[k + 3 + j]) end
    local st = ps[1] or unknown
    local nt = ps[2] or ''
    local wl = '0'
    if ps[4] and (tonumber(ps[4]) or 0) > now then wl = '1' end
    local vd, rs = 'pass', ''
    if st == 'red' then
      vd, rs = 'deny', 'red_code'
    elseif st == 'yellow' then
      vd, rs = 'restricted', 'yellow_code'
    elseif rnt then
      if lite then
        vd, rs = 'restricted', 'test_unchecked'
      else
        local ntn = tonumber(nt) or 0
        local ptn = tonumber(ps[3] or '') or 0
        if ntn <= 0 or ntn <= ptn or ntn < at - rnt * 3600000 then vd, rs = 'deny', 'test_expired' end
      end
    end
    if lite then nt = '' end
    redis.call('XADD', stream, '*', 'scan', table.concat({'0', cid, pid, vid, at_s, end_s, dw_s, d, s, c,
      st, vd, rs, src, owner, wl, lat, lon, acc, vlat, vlon, now_s}, '\t'))
    people[j] = {pid, st, vd, rs, wl, ps[5] or '', nt}
  end

  local rec = cjson.encode({cid = cid, vid = vid, at = at_s, ['end'] = end_s, dw = dw_s, d = d, s = s,
    c = c, vlat = vlat, vlon = vlon, lat = lat, lon = lon, acc = acc, src = src, own = owner,
    rcv = now_s, vn = vname, p = people})
  redis.call('SET', rkey, rec, 'EX', ttl)
  if client ~= '' then
    redis.call('HSET', okey, cfield, cid, vfield, cid .. '|' .. at_s)
  else
    redis.call('HSET', okey, vfield, cid .. '|' .. at_s)
  end
  touched[okey] = true
  -- a new field may be the hash's first: give it its expiry then, not on every count
  if redis.call('HINCRBY', dkey, vid, np) == np then redis.call('EXPIRE', dkey, day_ttl) end
  if brief then return 'ok', cid end
  return 'ok', rec
end

local out = {'items'}
local k, a = 4, 12
for _ = 1, nitems do
  local np = tonumber(ARGV[a + 10])
  local code, payload = one(k, a)
  out[#out + 1] = code
  out[#out + 1] = payload
  k = k + 4 + np
  a = a + 11 + np
end
for key in pairs(touched) do redis.call('EXPIRE', key, ttl) end
return out

-- Check-ins in one call (driven by checkin/checkins/service.py): on a single node every item of a
-- request, whatever its venue's stream shard; in cluster mode the items of one shard.
--
-- Every key arrives in KEYS or, for records and hot state of persons named by an earlier check-in,
-- is a key prefix and an id (names are built by checkin/platform/redis_keys.py); in cluster mode all
-- share the shard's hash tag. The stream entry (one `scan` field, tab-separated values in the order of
-- checkin/platform/scan_stream.py's LAYOUT; tests/test_scan_line.py pins it) is written below.
--
-- KEYS  [1] a stream (a placeholder for budgets not counted), [2] the caller's scan budget counter
--       (a resident's or a door device's), [3] the client address's scan budget counter (both: key 1
--       when not counted), then per item: venue hash, day-entries hash, new check-in record (its
--       name is the shard's record prefix and the check-in id), the owner's dedupe hash (fields
--       c:<client id> -> check-in id, v:<venue id> -> "check-in id|scan instant,..." of the owner's
--       recent scans there, newest first), the venue's stream, then one person-state hash per
--       person.
-- ARGV  [1] now (unix ms), [2] caller budget (scans a minute, 0 = not counted), [3] address budget,
--       [4] budget window (ms), [5] colour of unknown persons, [6] flags: "l" = lite (skip the
--       test-result lookup), "b" = brief (answer ids only), [7] record TTL (s), [8] item count,
--       [9] repeat window (ms: a scan by the same owner at the same venue within it of ANY recent
--       scan there is that check-in), [10] lifetime of a day-entries hash (s), [11] person-state key
--       prefix, [12] scans remembered per owner and venue for the repeat rule, [13] how long a
--       person's stays are kept for the one-place-at-a-time rule (ms: the longest backdating plus
--       the longest stay), [14] key prefix of the persons' kept stays (stays.lua),
--       then per item: venue id, code version ('' = any), code kind ('s' printed poster, 'r'
--       rotating screen, '' = a door device), scan instant (ms), new check-in id, client id
--       ('' = none), source, lat, lon, accuracy, the owner's token version ('' = not checked: an
--       id card), person count, person ids (owner first).
--
-- judge() (the verdict of one person) comes from verdict.lua and the stay_* functions (one place at
-- a time) from stays.lua, both prepended when the script is loaded.
--
-- Budgets count scans (persons x items), not requests: an item that would take a budget over its
-- limit is refused with nothing written; the counters move once, at the end, by what was written.
-- Every redis.call costs more than its command here, so the script makes as few as it can.
--
-- Reply: {'items', code, payload, code, payload, ...} with code one of
--   ok      payload = the check-in record (JSON), or its id in brief mode
--   dup     the earlier check-in (same client id, or the same owner and venue within the repeat
--           window of one of their recent scans there), with each person's colour, test and
--           verdict as they are NOW and each stay's end now; persons this scan names who were not
--           yet in it are added to it, each with a stay from this scan's instant (nothing else is
--           written)
--   unknown / inactive / old_code / static_code   (payload = venue name)
--   foreign (payload = the person id that is not a companion of the owner)
--   revoked (the owner's credential carries a token version older than the person's)
--   rate    (payload = 'caller' or 'address': that budget has no room for this item's scans)

local now = tonumber(ARGV[1])
local now_s = ARGV[1]
-- durations handed back to Redis stay the text they came as: a Lua number would be formatted again
local window = ARGV[4]
local unknown = ARGV[5]
local lite = string.find(ARGV[6], 'l', 1, true) ~= nil
local brief = string.find(ARGV[6], 'b', 1, true) ~= nil
local ttl = ARGV[7]
local nitems = tonumber(ARGV[8])
local repeat_ms = tonumber(ARGV[9])
local day_ttl = ARGV[10]
local pstates = ARGV[11]
local remembered = tonumber(ARGV[12])
local keep_s = ARGV[13]
local keep = tonumber(keep_s)
local stays_prefix = ARGV[14]
-- The stream and check-in record prefix of the item being run (set by one()): end rows of the stays
-- an item ends go to the item's stream.
local stream = KEYS[1]
local records = ''

-- Both budgets' counters in one read (a key that is not a counter, the stream standing in for a
-- budget not counted, reads as nil).
local caller_limit, address_limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local counted = {}
if caller_limit > 0 or address_limit > 0 then counted = redis.call('MGET', KEYS[2], KEYS[3]) end
local function budget(key, limit, used)
  if limit <= 0 then return nil end
  return {key = key, limit = limit, used = tonumber(used or '0'), added = 0}
end
local caller_budget = budget(KEYS[2], caller_limit, counted[1])
local address_budget = budget(KEYS[3], address_limit, counted[2])
local function fits(b, n) return b == nil or b.used + b.added + n <= b.limit end
local function spend(b, n) if b then b.added = b.added + n end end

-- Within one call (a batch is one owner's queue) the persons' hot state does not change and the
-- owner's dedupe hash needs its expiry once: both are remembered per key.
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
local moved = {}  -- persons whose kept stays changed: written once, at the end

-- A person's kept stays (stays.lua), read and parsed once per call.
local lists = {}
local function stays_of(pid)
  local list = lists[pid]
  if not list then
    list = stays_list(redis.call('GET', stays_prefix .. pid))
    lists[pid] = list
  end
  return list
end

-- Fill in each person's stay end as it is now (a later stay of theirs may have ended it).
local function current_ends(rec)
  for _, p in ipairs(rec.p) do
    local start = p[8] or rec.at
    local st = stay_find(stays_of(p[1]), tonumber(start), rec.cid)
    if st then p[8], p[9], p[10] = start, st.e_s, stay_ended_by(st) end
  end
end

-- A new stay of one person of check-in `cid` (their hot state at `pkey`): its row and the end rows of
-- the stays it ends (stays.lua writes them at once, or at stays_flush() in a call of several items).
-- `base` is its own end (at + dwell), `base_s` the same as text.
local function open_stay(pid, pkey, cid, vid, at, at_s, base, base_s, dw_s, d, s, c, vlat, vlon, src,
                         owner, lat, lon, acc, rnt)
  local ps = state(pkey)
  local st, vd, rs, wl, nt = judge(ps, rnt, at, now, unknown, lite)
  local list = stays_of(pid)
  local pos, e_s, by = stay_place(list, at, base, base_s)
  local row = table.concat({'0', cid, pid, vid, at_s, e_s, dw_s, d, s, c, st, vd, rs, src, owner, wl, lat,
    lon, acc, vlat, vlon, now_s, by}, '\t')
  stay_insert(list, pos, at, at_s, base_s, e_s, row, stream)
  moved[pid] = true
  return {pid, st, vd, rs, wl, ps[5] or '', nt, at_s, e_s, by}
end

-- A venue's entries per unix hour of the scan (field <venue id>:<unix hour> of the scan's local day's
-- hash; the day's count is their sum). A field's first count gives the hash its expiry, so the hash
-- outlives its last hour by the expiry.
local function count_entries(dkey, vid, at, n)
  if redis.call('HINCRBY', dkey, string.format('%s:%d', vid, at / 3600000), string.format('%d', n)) == n then
    redis.call('EXPIRE', dkey, day_ttl)
  end
end

local function foreign_of(own_state, a, np, skip)
  if np <= 1 then return nil end
  local cmp = own_state[6] or ''
  for j = 2, np do
    local pid = ARGV[a + 11 + j]
    if not skip[pid] and not string.find(cmp, ',' .. pid .. ',', 1, true) then return pid end
  end
  return nil
end

-- An earlier check-in of this shard that this scan repeats: persons the scan names who are not in
-- it yet join it (a stay each from this scan's instant), then every person is judged again now.
-- Returns code, payload; nil when the record is gone.
local function repeat_of(pcid, rnt, k, a, at, at_s, own_state, dkey)
  local raw = redis.call('GET', records .. pcid)
  if not raw then return nil end
  local np = tonumber(ARGV[a + 11])
  -- the owner is in every check-in of theirs: a scan without companions adds no one
  if np == 1 and brief then return 'dup', pcid end
  local rec = cjson.decode(raw)
  local have = {}
  for _, p in ipairs(rec.p) do have[p[1]] = true end
  local added = {}
  for j = 2, np do
    local pid = ARGV[a + 11 + j]
    if not have[pid] then added[#added + 1] = j end
  end
  if #added > 0 then
    local bad = foreign_of(own_state, a, np, have)
    if bad then return 'foreign', bad end
    if not fits(caller_budget, #added) then return 'rate', 'caller' end
    if not fits(address_budget, #added) then return 'rate', 'address' end
    local base = at + tonumber(rec.dw) * 1000
    local base_s = string.format('%d', base)
    for _, j in ipairs(added) do
      rec.p[#rec.p + 1] = open_stay(ARGV[a + 11 + j], KEYS[k + 4 + j], rec.cid, rec.vid, at, at_s, base,
        base_s, rec.dw, rec.d, rec.s, rec.c, rec.vlat, rec.vlon, ARGV[a + 6], ARGV[a + 12], ARGV[a + 7],
        ARGV[a + 8], ARGV[a + 9], rnt)
    end
    spend(caller_budget, #added)
    spend(address_budget, #added)
    redis.call('SET', records .. pcid, cjson.encode(rec), 'KEEPTTL')
    count_entries(dkey, rec.vid, at, #added)
  end
  if brief then return 'dup', pcid end
  for _, p in ipairs(rec.p) do
    local st, vd, rs, wl, nt = judge(state(pstates .. p[1]), rnt, at, now, unknown, lite)
    p[2], p[3], p[4], p[5], p[7] = st, vd, rs, wl, nt
  end
  current_ends(rec)
  return 'dup', cjson.encode(rec)
end

local function one(k, a)
  local vkey, dkey, rkey, okey = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local vid, cv, kind, at_s, cid = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  stream = KEYS[k + 4]
  records = string.sub(rkey, 1, #rkey - #cid)
  local client, src, lat, lon, acc = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local tv = ARGV[a + 10]
  local np = tonumber(ARGV[a + 11])
  local owner = ARGV[a + 12]
  local at = tonumber(at_s)

  local own_state = state(KEYS[k + 5])
  if tv ~= '' and (tonumber(own_state[7] or '0') or 0) > tonumber(tv) then return 'revoked', '' end

  local v = redis.call('HMGET', vkey, 'active', 'code_version', 'district', 'street', 'community',
    'lat', 'lon', 'dwell_minutes', 'requires_negative_test_hours', 'name', 'code_mode')
  if not v[1] then return 'unknown', '' end
  local vname = v[10] or ''
  if v[1] ~= '1' then return 'inactive', vname end
  if cv ~= '' and v[2] ~= cv then return 'old_code', vname end
  if kind == 's' and v[11] == 'rotating' then return 'static_code', vname end
  local rnt = tonumber(v[9] or '')

  local cfield = 'c:' .. client
  local vfield = 'v:' .. vid
  local seen = redis.call('HMGET', okey, cfield, vfield)
  if client ~= '' and seen[1] then
    local code, payload = repeat_of(seen[1], rnt, k, a, at, at_s, own_state, dkey)
    if code then return code, payload end
  end
  local recent = seen[2] or ''
  for pcid, pat in string.gmatch(recent, '([^,|]+)|(%d+)') do
    if math.abs(tonumber(pat) - at) < repeat_ms then
      local code, payload = repeat_of(pcid, rnt, k, a, at, at_s, own_state, dkey)
      if code then
        if client ~= '' and code == 'dup' then redis.call('HSET', okey, cfield, pcid) end
        return code, payload
      end
    end
  end

  local bad = foreign_of(own_state, a, np, {})
  if bad then return 'foreign', bad end
  if not fits(caller_budget, np) then return 'rate', 'caller' end
  if not fits(address_budget, np) then return 'rate', 'address' end

  local dw = (tonumber(v[8] or '') or 60) * 60
  local dw_s = string.format('%d', dw)
  local end_s = string.format('%d', at + dw * 1000)
  local d, s, c = v[3] or '', v[4] or '', v[5] or ''
  local vlat, vlon = v[6] or '', v[7] or ''
  local base = at + dw * 1000
  local people = {}
  for j = 1, np do
    people[j] = open_stay(ARGV[a + 11 + j], KEYS[k + 4 + j], cid, vid, at, at_s, base, end_s, dw_s, d, s, c,
      vlat, vlon, src, owner, lat, lon, acc, rnt)
  end
  spend(caller_budget, np)
  spend(address_budget, np)

  local rec = cjson.encode({cid = cid, vid = vid, at = at_s, ['end'] = end_s, dw = dw_s, d = d, s = s,
    c = c, vlat = vlat, vlon = vlon, lat = lat, lon = lon, acc = acc, src = src, own = owner,
    rcv = now_s, vn = vname, p = people})
  redis.call('SET', rkey, rec, 'EX', ttl)
  -- this scan first, then the owner's other recent scans at this venue, at most `remembered`
  local list = {cid .. '|' .. at_s}
  for entry in string.gmatch(recent, '[^,]+') do
    if #list >= remembered then break end
    list[#list + 1] = entry
  end
  local scans = table.concat(list, ',')
  if client ~= '' then
    redis.call('HSET', okey, cfield, cid, vfield, scans)
  else
    redis.call('HSET', okey, vfield, scans)
  end
  touched[okey] = true
  count_entries(dkey, vid, at, np)
  if brief then return 'ok', cid end
  return 'ok', rec
end

local out = {'items'}
local k, a = 4, 15
if nitems > 1 then stays_defer() end
for _ = 1, nitems do
  local np = tonumber(ARGV[a + 11])
  local code, payload = one(k, a)
  out[#out + 1] = code
  out[#out + 1] = payload
  k = k + 5 + np
  a = a + 12 + np
end
local function settle(b)
  if b and b.added > 0 and redis.call('INCRBY', b.key, string.format('%d', b.added)) == b.added then
    redis.call('PEXPIRE', b.key, window)
  end
end
settle(caller_budget)
settle(address_budget)
for key in pairs(touched) do redis.call('EXPIRE', key, ttl) end
stays_flush()
for pid in pairs(moved) do
  redis.call('SET', stays_prefix .. pid, stays_text(lists[pid], now - keep), 'PX', keep_s)
end
return out

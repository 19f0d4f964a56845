-- One place at a time: each person's recent stays, and the ends they give each other
-- (docs/ARCHITECTURE.md, "Stays and contacts"). Prepended to checkin.lua, checkout.lua and
-- reevaluate.lua when they are loaded (checkin/checkins/service.py).
--
-- A stay ends at the earliest of its own end (the natural end at + dwell, or the check-out) and
-- the start of the person's next stay anywhere. Every stay of a person started in the last `keep`
-- ms (the longest a scan may be backdated plus the longest stay) is kept in one string per person
-- (`person-stays:{tag}:<id>`, expiring `keep` after its last write), so a scan that arrives late
-- finds the stay before it (which it ends) and the stay after it (which ends it) exactly as if it had
-- come in time, at the cost of one read and one write per person and call.
--
-- The string: entries separated by ';', oldest first; an entry is
--   at | base end | base kind | row version | end | checkin_id | venue_id | tail
-- where base end is the stay's own end (natural, or the check-out instant), base kind '' or
-- 'checkout', end = min(base end, start of the person's next stay), and tail the stay's scan line
-- after end_at (checkin/platform/scan_stream.py's LAYOUT: dwell_s .. received_at), so an end row
-- can be written for a stay whose check-in record has expired. An end row is the stay's line with
-- the next version (255 at most), the new end_at and ended_by; ClickHouse keeps the highest version
-- (tracing/storage/schema.py).
--
-- Within one call a person's list is parsed once and written once (a batch may carry hundreds of a
-- person's scans): stays_list() / stays_text().

local MAX_ROW_VERSION = 255

-- Parse the string into a list of stays, oldest first: {at = number, raw = entry}; the other fields are
-- read by stay_full() only for the stays a scan touches.
local function stays_list(text)
  local out = {}
  if not text or text == '' then return out end
  for raw in string.gmatch(text, '[^;]+') do
    out[#out + 1] = {at = tonumber(string.match(raw, '^%d+')), raw = raw}
  end
  return out
end

local function stay_full(s)
  if s.cid then return s end
  local at_s, base, kind, ver, e, cid, vid, tail =
    string.match(s.raw, '^(%d+)|(%d+)|([%a_]*)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
  s.at_s, s.base_s, s.kind, s.ver, s.e_s = at_s, base, kind, tonumber(ver), e
  s.base, s.e, s.cid, s.vid, s.tail = tonumber(base), tonumber(e), cid, vid, tail
  return s
end

local function stay_encode(s)
  s.raw = table.concat({s.at_s, s.base_s, s.kind, s.ver, s.e_s, s.cid, s.vid, s.tail}, '|')
end

-- The kept stays as their string, those that started before `oldest` left out.
local function stays_text(list, oldest)
  local parts = {}
  for _, s in ipairs(list) do
    if s.at >= oldest then parts[#parts + 1] = s.raw end
  end
  return table.concat(parts, ';')
end

local function stay_ended_by(s)
  if s.e < s.base then return 'next_stay' end
  return s.kind
end

local function stay_row(s, pid)
  return table.concat({s.ver, s.cid, pid, s.vid, s.at_s, s.e_s, s.tail, stay_ended_by(s)}, '\t')
end

local function set_end(s, e)
  s.e = e
  s.e_s = string.format('%d', e)
end

-- A new end (or base) of a kept stay: the next row version, written to `stream`.
local function stay_ended(s, pid, stream)
  s.ver = math.min(s.ver + 1, MAX_ROW_VERSION)
  stay_encode(s)
  redis.call('XADD', stream, '*', 'scan', stay_row(s, pid))
end

-- The position in `list` (oldest first) of the first stay starting strictly after `at`
-- (#list + 1 when none does).
local function stay_after(list, at)
  local lo, hi = 1, #list + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if list[mid].at > at then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- Open a stay of person `pid` at `at` (`at_s` its text) in the kept stays `list` (changed in
-- place): end the stays just before it that run past its start (end rows to `stream`) and cut it
-- at the person's next stay. Returns the stay (its end and ended_by are those of its check-in row).
local function stay_open(list, pid, cid, vid, at, at_s, base_end, base_s, tail, stream)
  local new = {at = at, at_s = at_s, base = base_end, base_s = base_s, kind = '', ver = 0,
    e = base_end, e_s = base_s, cid = cid, vid = vid, tail = tail}
  local pos = stay_after(list, at)
  local nxt = list[pos]
  if nxt and nxt.at < base_end then set_end(new, nxt.at) end
  -- the stays just before (several only when they share their start)
  local i = pos - 1
  while i >= 1 and list[i].at == at do i = i - 1 end
  local before = list[i] and list[i].at
  while i >= 1 and list[i].at == before do
    local s = stay_full(list[i])
    if s.e > at then
      set_end(s, at)
      stay_ended(s, pid, stream)
    end
    i = i - 1
  end
  stay_encode(new)
  table.insert(list, pos, new)
  return new
end

-- The kept stay of check-in `cid` starting at `at`, or nil (older than `keep`, or opened before
-- stays were kept).
local function stay_find(list, at, cid)
  for i = stay_after(list, at) - 1, 1, -1 do
    local s = list[i]
    if s.at ~= at then return nil end
    if stay_full(s).cid == cid then return s end
  end
  return nil
end

-- A check-out at `c` of a kept stay: the check-out replaces its base end, the next stay still cuts
-- it. Writes an end row only when the end or its cause changed.
local function stay_check_out(list, s, pid, c, stream)
  local before_e, before_by = s.e, stay_ended_by(s)
  s.base, s.base_s, s.kind = c, string.format('%d', c), 'checkout'
  set_end(s, c)
  local nxt = list[stay_after(list, s.at)]
  if nxt and nxt.at < c then set_end(s, nxt.at) end
  if s.e ~= before_e or stay_ended_by(s) ~= before_by then
    stay_ended(s, pid, stream)
  else
    stay_encode(s)
  end
end

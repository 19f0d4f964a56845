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
--   at | base end | base kind | row version | end | row
-- where base end is the stay's own end (natural, or the check-out instant), base kind '' or
-- 'checkout', end = min(base end, start of the person's next stay), and row the stay's latest scan
-- line (checkin/platform/scan_stream.py's LAYOUT), so an end row can be written for a stay whose
-- check-in record has expired: the row with the next version (255 at most), the new end_at and
-- ended_by. ClickHouse keeps the highest version (tracing/storage/schema.py).
--
-- Within one call a person's list is parsed once and written once (a batch may carry hundreds of a
-- person's scans): stays_list() / stays_text(). In a call of several items (a queued batch, whose
-- every scan may end the one before) the rows of the stays it opens or ends go to the stream once, at
-- the end of the call (stays_defer() / stays_flush()): a stay opened and ended in the same call is one
-- row with its last end, at version 0, and a kept stay ended twice moves one version. A call of one
-- item writes each row at once (nothing later in it can change them). The functions allocate as
-- little as they can: every table and string here is garbage the script's Lua collector must sweep.

local MAX_ROW_VERSION = 255

-- The stays whose rows this call still has to write, in the order they first changed; a stay's
-- `stream` is where its row goes (the stream of the item that changed it last).
local unwritten = {}
local deferred = false

-- Rows written from now on wait for stays_flush().
local function stays_defer() deferred = true end

local function stay_queue(s, stream)
  if not deferred then
    redis.call('XADD', stream, '*', 'scan', s.row)
    return
  end
  if not s.queued then
    s.queued = true
    unwritten[#unwritten + 1] = s
  end
  s.stream = stream
end

-- Write the rows of every stay this call opened or ended (once each).
local function stays_flush()
  for i = 1, #unwritten do
    local s = unwritten[i]
    redis.call('XADD', s.stream, '*', 'scan', s.row)
  end
end

-- Parse the string into a list of stays, oldest first: {at = number, raw = entry}; the rest is read
-- by stay_full() only for the stays a scan touches (`ver` set once it has been).
local function stays_list(text)
  local out = {}
  if not text or text == '' then return out end
  for raw in string.gmatch(text, '[^;]+') do
    out[#out + 1] = {at = tonumber(string.match(raw, '^%d+')), raw = raw}
  end
  return out
end

local function stay_full(s)
  if s.ver then return s end
  local at_s, base_s, kind, ver, e_s, row = string.match(s.raw, '^(%d+)|(%d+)|([%a_]*)|(%d+)|(%d+)|(.*)$')
  s.at_s, s.base_s, s.kind, s.ver, s.e_s, s.row = at_s, base_s, kind, tonumber(ver), e_s, row
  s.base, s.e = tonumber(base_s), tonumber(e_s)
  return s
end

local function stay_ended_by(s)
  if s.e < s.base then return 'next_stay' end
  return s.kind
end

-- The check-in id in a stay's row.
local function stay_cid(s)
  return string.match(stay_full(s).row, '^%d+\t([^\t]*)')
end

-- The kept stays as their string, those that started before `oldest` left out.
local function stays_text(list, oldest)
  local parts = {}
  for _, s in ipairs(list) do
    if s.at >= oldest then parts[#parts + 1] = s.raw end
  end
  return table.concat(parts, ';')
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

-- A kept stay whose end or base changed: its row with the new end (and the next version, unless the
-- call has not written the stay yet), queued for `stream`, and its entry.
local function stay_ended(s, stream)
  if not s.queued then s.ver = math.min(s.ver + 1, MAX_ROW_VERSION) end
  local mid, rest = string.match(s.row, '^%d+\t([^\t]*\t[^\t]*\t[^\t]*\t[^\t]*)\t%d+\t(.*)\t[%a_]*$')
  s.row = s.ver .. '\t' .. mid .. '\t' .. s.e_s .. '\t' .. rest .. '\t' .. stay_ended_by(s)
  s.raw = s.at_s .. '|' .. s.base_s .. '|' .. s.kind .. '|' .. s.ver .. '|' .. s.e_s .. '|' .. s.row
  stay_queue(s, stream)
end

-- Where a new stay at `at` goes in `list`, and its end and ended_by (the next stay may cut it).
local function stay_place(list, at, base, base_s)
  local pos = stay_after(list, at)
  local nxt = list[pos]
  if nxt and nxt.at < base then return pos, string.match(nxt.raw, '^%d+'), 'next_stay' end
  return pos, base_s, ''
end

-- Put the new stay in `list` at `pos`, its row (version 0) queued for `stream`, and end the stays just
-- before it that run past its start (several only when they share their start).
local function stay_insert(list, pos, at, at_s, base_s, e_s, row, stream)
  local i = pos - 1
  while i >= 1 and list[i].at == at do i = i - 1 end
  local before = list[i] and list[i].at
  while i >= 1 and list[i].at == before do
    local s = stay_full(list[i])
    if s.e > at then
      s.e, s.e_s = at, at_s
      stay_ended(s, stream)
    end
    i = i - 1
  end
  local raw = at_s .. '|' .. base_s .. '||0|' .. e_s .. '|' .. row
  if deferred then
    -- a later item of the call may end it: parsed already, as stay_full() would
    local s = {at = at, at_s = at_s, base = tonumber(base_s), base_s = base_s, kind = '', ver = 0,
      e = tonumber(e_s), e_s = e_s, row = row, raw = raw}
    table.insert(list, pos, s)
    stay_queue(s, stream)
  else
    table.insert(list, pos, {at = at, raw = raw})
    redis.call('XADD', stream, '*', 'scan', row)
  end
end

-- The kept stay of check-in `cid` starting at `at`, or nil (older than `keep`, or opened before
-- stays were kept).
local function stay_find(list, at, cid)
  for i = stay_after(list, at) - 1, 1, -1 do
    local s = list[i]
    if s.at ~= at then return nil end
    if stay_cid(s) == cid then return s end
  end
  return nil
end

-- A check-out at `c` of a kept stay: the check-out replaces its base end, the next stay still cuts
-- it. Writes an end row only when the end or its cause changed.
local function stay_check_out(list, s, c, stream)
  local before_e, before_by = s.e, stay_ended_by(s)
  s.base, s.base_s, s.kind = c, string.format('%d', c), 'checkout'
  s.e, s.e_s = c, s.base_s
  local nxt = list[stay_after(list, s.at)]
  if nxt and nxt.at < c then s.e, s.e_s = nxt.at, string.match(nxt.raw, '^%d+') end
  if s.e ~= before_e or stay_ended_by(s) ~= before_by then
    stay_ended(s, stream)
  else
    s.raw = s.at_s .. '|' .. s.base_s .. '|' .. s.kind .. '|' .. s.ver .. '|' .. s.e_s .. '|' .. s.row
  end
end

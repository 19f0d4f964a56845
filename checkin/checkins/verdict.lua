-- The verdict at the door for one person's hot state (docs/ARCHITECTURE.md, "Verdict at the door").
-- Prepended to checkin.lua and reevaluate.lua when they are loaded (checkin/checkins/service.py),
-- so a check-in and its later re-evaluation judge alike.
--
-- ps      HMGET of the person's hot state: st, nt, pt, wl, nm, cmp, tv
-- rnt     the venue's required negative test (hours; nil = none)
-- at      the instant judged (the scan, or now for a re-evaluation)
-- now     unix ms; unknown = colour of a person without a state; lite = skip the test lookup
-- returns colour, verdict, reason ('' = none), on the watchlist ('1'/'0'), last negative test (ms)

local function judge(ps, rnt, at, now, unknown, lite)
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
  return st, vd, rs, wl, nt
end


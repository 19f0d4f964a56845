-- One owner's check-in, each person judged again now (GET /v1/checkins/{checkin_id}: what a
-- resumed phone page shows), with each person's stay end as it is now. judge() comes from
-- verdict.lua and stay_find() from stays.lua, prepended when the script is loaded.
--
-- KEYS  [1] the check-in record.
-- ARGV  [1] the caller's person id (only the owner sees the check-in), [2] now (unix ms),
--       [3] colour of unknown persons, [4] venue key prefix of the record's shard, [5] person-state
--       key prefix of the shard (names built by checkin/platform/redis_keys.py, same hash tag),
--       [6] key prefix of the persons' kept stays (stays.lua).
-- Reply: {'ok', record JSON with each person's colour, verdict, reason, watchlist and test as now}
--        | {'missing'} (no such record, expired, or someone else's)

local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.own ~= ARGV[1] then return {'missing'} end
local now = tonumber(ARGV[2])
local rnt = tonumber(redis.call('HGET', ARGV[4] .. rec.vid, 'requires_negative_test_hours') or '')
for _, p in ipairs(rec.p) do
  local ps = redis.call('HMGET', ARGV[5] .. p[1], 'st', 'nt', 'pt', 'wl', 'nm', 'cmp', 'tv')
  local st, vd, rs, wl, nt = judge(ps, rnt, now, now, ARGV[3], false)
  p[2], p[3], p[4], p[5], p[7] = st, vd, rs, wl, nt
  local start = p[8] or rec.at
  local s = stay_find(stays_list(redis.call('GET', ARGV[6] .. p[1])), tonumber(start), rec.cid)
  if s then p[8], p[9], p[10] = start, s.e_s, stay_ended_by(s) end
end
return {'ok', cjson.encode(rec)}

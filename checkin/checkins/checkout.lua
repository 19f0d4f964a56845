-- Check-out of one check-in (driven by checkin/checkins/service.py). The stay_* functions (one place
-- at a time) come from stays.lua, prepended when the script is loaded.
--
-- KEYS  [1] stream of the check-in's shard, [2] the check-in record.
-- ARGV  [1] now (unix ms), [2] person id of the caller, [3] longest stay (ms), [4] key prefix of the
--       persons' kept stays (stays.lua).
--
-- For each person of the check-in the check-out replaces the stay's own end by now; a stay that the
-- person's next stay already ended keeps that end (nothing is written for it). Changed ends go out
-- as end rows (stays.lua). The record is marked as checked out.
-- Reply: {'ok', the owner's stay end now, record} | {'missing'} | {'done', end} | {'early', at}
--        | {'late', at}

local raw = redis.call('GET', KEYS[2])
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.own ~= ARGV[2] then return {'missing'} end
if rec.out then return {'done', rec.out} end
local now = tonumber(ARGV[1])
local at = tonumber(rec.at)
if now <= at then return {'early', rec.at} end
if now > at + tonumber(ARGV[3]) then return {'late', rec.at} end
local stays_prefix = ARGV[4]
for _, p in ipairs(rec.p) do
  local start = p[8] or rec.at
  local key = stays_prefix .. p[1]
  local list = stays_list(redis.call('GET', key))
  local s = stay_find(list, tonumber(start), rec.cid)
  if s then
    if now > tonumber(start) then
      stay_check_out(list, s, now, KEYS[1])
      redis.call('SET', key, stays_text(list, 0), 'KEEPTTL')
    end
    p[9], p[10] = s.e_s, stay_ended_by(s)
  else
    -- a stay no longer kept (opened before stays were kept): the check-out is its end
    redis.call('XADD', KEYS[1], '*', 'scan', table.concat({'1', rec.cid, p[1], rec.vid, start, ARGV[1],
      rec.dw, rec.d, rec.s, rec.c, p[2], p[3], p[4], rec.src, rec.own, p[5], rec.lat, rec.lon, rec.acc,
      rec.vlat, rec.vlon, rec.rcv, 'checkout'}, '\t'))
    p[9], p[10] = ARGV[1], 'checkout'
  end
end
stays_flush()
rec.out = ARGV[1]
local encoded = cjson.encode(rec)
redis.call('SET', KEYS[2], encoded, 'KEEPTTL')
return {'ok', rec.p[1][9], encoded}

-- Check-out of one check-in (driven by checkin/checkins.py).
--
-- KEYS  [1] stream of the check-in's shard, [2] the check-in record.
-- ARGV  [1] now (unix ms), [2] person id of the caller, [3] longest stay (ms).
--
-- Writes one check-out entry (version 1) per person of the check-in: the values of the check-in
-- entry with end_at = now (checkin/events.py), and marks the record as checked out.
-- Reply: {'ok', end, record} | {'missing'} | {'done', end} | {'early', at} | {'late', at}

local raw = redis.call('GET', KEYS[2])
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.own ~= ARGV[2] then return {'missing'} end
if rec.out then return {'done', rec.out} end
local now = tonumber(ARGV[1])
local at = tonumber(rec.at)
if now <= at then return {'early', rec.at} end
if now > at + tonumber(ARGV[3]) then return {'late', rec.at} end
for _, p in ipairs(rec.p) do
  redis.call('XADD', KEYS[1], '*', 'scan', table.concat({'1', rec.cid, p[1], rec.vid, rec.at, ARGV[1],
    rec.dw, rec.d, rec.s, rec.c, p[2], p[3], p[4], rec.src, rec.own, p[5], rec.lat, rec.lon, rec.acc,
    rec.vlat, rec.vlon, rec.rcv}, '\t'))
end
rec.out = ARGV[1]
redis.call('SET', KEYS[2], cjson.encode(rec), 'KEEPTTL')
return {'ok', ARGV[1], raw}

-- Check-out of one check-in (driven by checkin/checkins.py).
--
-- KEYS  [1] stream of the check-in's shard, [2] the check-in record.
-- ARGV  [1] now (unix ms), [2] person id of the caller, [3] longest stay (ms).
--
-- Writes one t=out entry per person of the check-in: the fields of the t=in entry with
-- `end` = now (checkin/events.py), and marks the record as checked out.
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
  redis.call('XADD', KEYS[1], '*', 't', 'out', 'cid', rec.cid, 'pid', p[1], 'vid', rec.vid, 'at', rec.at,
    'end', ARGV[1], 'dw', rec.dw, 'd', rec.d, 's', rec.s, 'c', rec.c, 'st', p[2], 'vd', p[3], 'rs', p[4],
    'src', rec.src, 'own', rec.own, 'wl', p[5], 'lat', rec.lat, 'lon', rec.lon, 'acc', rec.acc,
    'vlat', rec.vlat, 'vlon', rec.vlon, 'rcv', rec.rcv)
end
rec.out = ARGV[1]
redis.call('SET', KEYS[2], cjson.encode(rec), 'KEEPTTL')
return {'ok', ARGV[1], raw}

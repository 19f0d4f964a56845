"""The registry's Redis scripts: create, import (upsert), patch, rotate a code, allocate an id."""

from __future__ import annotations

# KEYS[1] venue hash; ARGV field/value pairs. Refuses to overwrite an existing venue.
CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS[1] venue hash; ARGV = data field/value pairs, then updated_at.
# Returns {2, ''} created, {1, old community, field, old value, ...} updated (the fields that changed,
# for the venue's history), {0, ''} unchanged.
UPSERT_LUA = """
local key = KEYS[1]
local n = #ARGV - 1
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, unpack(ARGV, 1, n))
  redis.call('HSET', key, 'active', '1', 'code_version', '1', 'updated_at', ARGV[#ARGV])
  return {2, ''}
end
local fields = {}
for i = 1, n, 2 do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'community'
local cur = redis.call('HMGET', key, unpack(fields))
local changed = false
for j = 1, #fields - 1 do
  if cur[j] ~= ARGV[2 * j] then changed = true break end
end
if not changed then return {0, ''} end
local out = {1, cur[#fields] or ''}
for j = 1, #fields - 1 do
  if cur[j] ~= ARGV[2 * j] then
    out[#out + 1] = fields[j]
    out[#out + 1] = cur[j] or ''
  end
end
redis.call('HSET', key, unpack(ARGV, 1, n))
redis.call('HSET', key, 'updated_at', ARGV[#ARGV])
return out
"""

# KEYS[1] venue hash; ARGV[1] updated_at. Returns the new version, 0 if the venue is unknown,
# -1 if the version space is exhausted.
ROTATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = tonumber(redis.call('HGET', KEYS[1], 'code_version') or '1')
if v >= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'code_version', tostring(v + 1), 'updated_at', ARGV[1])
return v + 1
"""

# KEYS[1] id sequence, KEYS[2] id index (sorted set, score = id); ARGV[1] largest id. The next id
# the registry assigns: one past the sequence, or past the ids taken from there on (an import may hold
# any id; the sequence skips the ones taken and never jumps to the top of the range). -1 when none
# is left. The first free id at or after `lo` is found by halving on ZCOUNT, a few dozen calls.
NEXT_ID_LUA = """
local lo = redis.call('INCR', KEYS[1])
local top = tonumber(ARGV[1])
if lo > top then return -1 end
if redis.call('ZCOUNT', KEYS[2], lo, lo) == 0 then return lo end
local hi = top
if redis.call('ZCOUNT', KEYS[2], lo, hi) >= hi - lo + 1 then return -1 end
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if redis.call('ZCOUNT', KEYS[2], lo, mid) < mid - lo + 1 then hi = mid else lo = mid + 1 end
end
redis.call('SET', KEYS[1], lo)
return lo
"""

# KEYS[1] patched venue hash; ARGV field/value pairs. Only if the venue still exists.
PATCH_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

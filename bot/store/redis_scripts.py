"""Lua for the rate limits and the tool cache of `RedisStore` (kept apart so that module stays small).

Every script names all its keys, and the keys of one call share a hash tag, so each is one round trip
on a single server and on Redis Cluster alike. Numbers cross the Lua boundary as strings formatted
with %d: Lua's `tostring` keeps only 14 significant digits, too few for microsecond timestamps.
"""

from __future__ import annotations

# GCRA over several limits at once. KEYS: one counter per limit. ARGV: window in µs, then each limit's
# count per window. The server clock (TIME) is the only clock, so processes with skewed clocks agree.
# Returns {wait µs, 1-based index of the tightest exceeded limit}; {0, 0} = allowed and counted.
RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local arrivals = {}
local wait, worst = 0, 0
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local arrival = tat + math.floor(window / tonumber(ARGV[i + 1]))
  local over = arrival - now - window
  if over > wait then wait, worst = over, i end
  arrivals[i] = arrival
end
if worst > 0 then return {string.format('%d', wait), worst} end
for i, key in ipairs(KEYS) do
  local ttl = math.max(1, math.ceil((arrivals[i] - now) / 1000))
  redis.call('SET', key, string.format('%d', arrivals[i]), 'PX', string.format('%d', ttl))
end
return {'0', 0}
"""

# KEYS: generation, entry. Returns {generation} on a miss, {generation, value} on a hit.
CACHE_GET = """
local gen = redis.call('GET', KEYS[1]) or '0'
local entry = redis.call('GET', KEYS[2])
if entry then
  local sep = string.find(entry, '|', 1, true)
  if sep and string.sub(entry, 1, sep - 1) == gen then return {gen, string.sub(entry, sep + 1)} end
end
return {gen}
"""

# KEYS: generation, entry. ARGV: the generation seen before the tool ran, value, ttl ms. A write that
# landed while the tool ran has bumped the generation: its (possibly stale) answer is dropped.
CACHE_PUT = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""

# KEYS: generations to bump.
CACHE_INVALIDATE = """
for _, key in ipairs(KEYS) do redis.call('INCR', key) end
return #KEYS
"""

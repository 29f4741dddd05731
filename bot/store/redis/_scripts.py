"""The Lua of the Redis store, one script per atomic step (kept apart so the store's modules stay small).

Every script names all its keys, and the keys of one call share a hash tag, so each is one round trip on a
single server and on Redis Cluster alike. Numbers cross the Lua boundary as strings formatted with %d: Lua's
`tostring` keeps only 14 significant digits, too few for microsecond timestamps.
"""

from __future__ import annotations

# KEYS: history, version, the delivery's outcome. Returns {history or false, version or false, outcome or false}.
LOAD_HISTORY = """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
"""

# KEYS: history, version, the delivery's outcome. ARGV: the version read, history, history ttl ms, outcome ('' for
# none), outcome ttl ms. Returns {1} written; {0} the history moved on since it was read; {2, outcome} this
# delivery already has an outcome (another run of it recorded first), and nothing is written.
APPEND_HISTORY = """
if ARGV[4] ~= '' then
  local done = redis.call('GET', KEYS[3])
  if done then return {2, done} end
end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], string.format('%d', tonumber(ARGV[1]) + 1), 'PX', ARGV[3])
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5]) end
return {1}
"""

# ARGV: expected, new, now, tx token, then field/value pairs to set on a win.
# Returns {won, changed_status, HGETALL}. `tx` lets a client-side retry of a transition that already
# won (reply lost on a dropped connection) still see its own win instead of "someone else won".
TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 0, {}} end
if status ~= ARGV[1] then
  local won = 0
  if status == ARGV[2] and redis.call('HGET', KEYS[1], 'tx') == ARGV[4] then won = 1 end
  return {won, 0, redis.call('HGETALL', KEYS[1])}
end
if ARGV[1] == 'pending' and ARGV[2] ~= 'expired' then
  local expires_at = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
  if expires_at and tonumber(ARGV[3]) > expires_at then
    redis.call('HSET', KEYS[1], 'status', 'expired')
    return {0, 1, redis.call('HGETALL', KEYS[1])}
  end
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'tx', ARGV[4], unpack(ARGV, 5))
return {1, 1, redis.call('HGETALL', KEYS[1])}
"""

# ARGV: keep_for ms, then field/value pairs. DEL first so a reused id can't inherit `f:` overrides of
# an older record; one script so the record never exists without its expiry.
CREATE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Only touch an existing record: HSET on an expired key would resurrect a partial, immortal hash.
UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

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

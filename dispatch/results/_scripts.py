"""The call record's transitions, one Lua script each (see :mod:`dispatch.results.states`).

Every script takes the record's three keys, ``KEYS = {call, result, attempts}``
(hash-tagged on the call id: one Cluster slot), and reads the clock of Redis
(``TIME``), so workers and clients with skewed clocks agree on due times and
leases.  Attempts come as JSON objects (``ARGV`` from a fixed index on) and
are numbered here, over the call's whole life, with ``HINCRBY attempts_total``, and
appended once per delivery: a write retried after the script ran (its answer lost
to a timeout, ``NotReplicated``) finds the delivery's token in the record's
``delivery`` field and appends nothing again.
"""

from __future__ import annotations

#: The most attempts kept per call (the oldest go first).
MAX_ATTEMPTS_KEPT = 100

_COMMON = f"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function append_attempts(delivery, first)
  if #ARGV < first then return end
  if delivery ~= '' then
    if redis.call('HGET', KEYS[1], 'delivery') == delivery then return end  -- a retried write of this delivery's
    redis.call('HSET', KEYS[1], 'delivery', delivery)
  end
  for i = first, #ARGV do
    local n = redis.call('HINCRBY', KEYS[1], 'attempts_total', 1)
    redis.call('RPUSH', KEYS[3], '{{"attempt":' .. n .. ',' .. string.sub(ARGV[i], 2))
  end
  redis.call('LTRIM', KEYS[3], -{MAX_ATTEMPTS_KEPT}, -1)
end
local function expire_all(ms)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ms) end
end
local function extend_all(ms)
  for i = 1, 3 do
    if redis.call('PTTL', KEYS[i]) < ms then redis.call('PEXPIRE', KEYS[i], ms) end
  end
end
"""

# ARGV: delay_ms, ttl_ms.  -> 1 recorded, 0 a record exists: its state is kept (a cancelled call stays cancelled),
# but it lives at least until the call is due plus the TTL (a cancel() can come before the outbox relay schedules).
SCHEDULE = (
    _COMMON
    + """
local delay = tonumber(ARGV[1])
local due = now_ms() + delay
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[1]) == 1 and (tonumber(redis.call('HGET', KEYS[1], 'due_at_ms')) or 0) < due then
    redis.call('HSET', KEYS[1], 'due_at_ms', due)
  end
  extend_all(delay + tonumber(ARGV[2]))
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'scheduled', 'wire', 0, 'due_at_ms', due)
redis.call('PEXPIRE', KEYS[1], delay + tonumber(ARGV[2]))
return 1
"""
)

# ARGV: holder, lease_ms, ttl_ms, a holder whose lease may be taken over ('' none: its process is gone), then the
# wait a previous delivery could not record (its delivery, wire (0/1), attempts...; '' when none).
# -> 'cancelled' | 'done' (a final outcome is stored) | 'busy <holder>' (another delivery of the call holds an
# unexpired lease: a redelivery while the first may still be in flight) | 'claimed'.
CLAIM = (
    _COMMON
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'cancelled' then return 'cancelled' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'done' end
if state == 'started' then
  local holder = redis.call('HGET', KEYS[1], 'holder')
  local lease_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until_ms')) or 0
  if holder and holder ~= ARGV[1] and holder ~= ARGV[4] and holder ~= ARGV[5] and lease_until > now_ms() then
    return 'busy ' .. holder
  end
end
if ARGV[5] ~= '' then
  if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'wire', 1) end
  append_attempts(ARGV[5], 7)
end
local lease = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'started', 'holder', ARGV[1], 'lease_until_ms', now_ms() + lease)
redis.call('HSETNX', KEYS[1], 'wire', 0)
expire_all(lease + tonumber(ARGV[3]))
return 'claimed'
"""
)

# ARGV: delay_ms, ttl_ms, wire (0/1), delivery, attempts...  The delivery ended with a scheduled redelivery.
WAIT = (
    _COMMON
    + """
local delay = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'due_at_ms', now_ms() + delay)
  redis.call('HDEL', KEYS[1], 'holder', 'lease_until_ms')
end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'wire', 1) else redis.call('HSETNX', KEYS[1], 'wire', 0) end
append_attempts(ARGV[4], 5)
redis.call('PEXPIRE', KEYS[1], delay + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[3], delay + tonumber(ARGV[2]))
return 1
"""
)

# ARGV: encoded outcome, final state, ttl_ms, wire (0/1), delivery, replays, attempts...
# -> 1 stored (now, or by this delivery's earlier try of the same write), 0 another outcome was there already,
# or the outcome comes from before the call's last replay (``replays``: the message's count of them).
FINISH = (
    _COMMON
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then
  if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'delivery') == ARGV[5] then return 1 end
  return 0
end
if (tonumber(redis.call('HGET', KEYS[1], 'replays')) or 0) > tonumber(ARGV[6]) then return 0 end
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'wire', 1) else redis.call('HSETNX', KEYS[1], 'wire', 0) end
append_attempts(ARGV[5], 7)
redis.call('HSET', KEYS[1], 'delivery', ARGV[5])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', ARGV[2])
redis.call('HDEL', KEYS[1], 'holder', 'lease_until_ms')
expire_all(tonumber(ARGV[3]))
return 1
"""
)

# ARGV: encoded CallCancelled outcome, ttl_ms.  -> 1 cancelled (now or before), 0 it may be on the wire or is done.
CANCEL = (
    _COMMON
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'cancelled' then return 1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if state == 'started' or redis.call('HGET', KEYS[1], 'wire') == '1' then return 0 end
local now = now_ms()
local due = tonumber(redis.call('HGET', KEYS[1], 'due_at_ms')) or now
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('HSETNX', KEYS[1], 'wire', 0)
redis.call('LPUSH', KEYS[2], ARGV[1])
expire_all(math.max(due - now, 0) + tonumber(ARGV[2]))
return 1
"""
)

# ARGV: ttl_ms, replays.  A dead letter is replayed (its ``replays``-th replay): its outcome goes and its state
# with it, so the replay is performed, not acked as done; its attempts and wire flag stay (the call's whole life).
FORGET = (
    _COMMON
    + """
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 'state', 'holder', 'lease_until_ms', 'due_at_ms', 'delivery')
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[1], 'replays', ARGV[2]) end
expire_all(tonumber(ARGV[1]))
return 1
"""
)

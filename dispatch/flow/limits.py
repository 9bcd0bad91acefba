"""A host's ``max_concurrency`` and ``rate``, across every worker, on Redis.

**Concurrency slots are leases.**  A host's slots are a sorted set: one
member per call holding a slot (its message id, the *holder*), scored with
the time its lease runs out -- the call's own deadline plus
:func:`lease_margin`: past the call's time limit, and past the claim's
write and its WAIT, which come after the slot is taken.  Taking a slot is one Lua script (drop the
leases that ran out, then add ours if fewer than the limit are held);
giving it back removes the holder.  A worker killed while it holds a slot
does not give it back, and does not need to: its lease runs out by the
call's deadline, which the call's time limit
(:mod:`dispatch.middleware.time_limit`) keeps every live holder within.

``rate`` is dramatiq's ``WindowRateLimiter``: calls per window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend as RateLimiterBackend

from ..destinations import Destination
from ..options import TIME_LIMIT_MARGIN_SECONDS
from ..redis_connect import store_wait_timeout_ms
from ..settings import Settings
from .keys import flow_key

#: What a lease adds beyond the call's time limit, the claim's write and its WAIT (:func:`lease_margin`).
LEASE_MARGIN_SECONDS = 5.0

#: The wait for a free concurrency slot, before jitter.
SLOT_WAIT_SECONDS = 0.5

# KEYS: the host's slots.  ARGV: holder, limit, lease ms.  Returns 1 when the holder has a slot (taken now, or
# already: a redelivery of the same call), 0 when every slot is held.
_ACQUIRE = """
if redis.call('TYPE', KEYS[1]).ok == 'string' then
    redis.call('DEL', KEYS[1])  -- the counter of a version before leases: its holders are not known
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
local lease_ms = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now_ms + lease_ms, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease_ms then
    redis.call('PEXPIRE', KEYS[1], lease_ms)
end
return 1
"""


class Wait(NamedTuple):
    """Why a call may not go now, and for how long it waits."""

    seconds: float
    reason: str  # "breaker", "concurrency" or "rate": the label of dispatch_flow_waits_total
    detail: str  # for the log line


class Lease:
    """Something a call holds while it is performed (a slot, the breaker's probe), given back once."""

    def __init__(self, release: Callable[[], object] | None = None) -> None:
        self._release = release

    def release(self) -> None:
        """Give it back; releasing again does nothing."""
        release, self._release = self._release, None
        if release is not None:
            release()


def lease_margin(settings: Settings) -> float:
    """How long a lease outlives its call's worst case, in seconds, so a live holder never loses it: the time
    limit's margin, then the claim made after the slot is taken (``DISPATCH_RESULTS_WRITE_TIMEOUT`` and its
    WAIT), then :data:`LEASE_MARGIN_SECONDS`."""
    write_timeout = settings.results_write_timeout
    wait_timeout = store_wait_timeout_ms(write_timeout) / 1000
    return TIME_LIMIT_MARGIN_SECONDS + write_timeout + wait_timeout + LEASE_MARGIN_SECONDS


def lease_ms(deadline: float) -> int:
    """A lease until ``deadline`` seconds from now (the call's worst case plus :func:`lease_margin`), in ms."""
    return int(deadline * 1000)


class Limits:
    """Admits a call to a host within its limits, or says how long it waits."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.backend = RateLimiterBackend(client=client)
        self.namespace = namespace
        self._acquire = client.register_script(_ACQUIRE)

    def admit(self, host: str, destination: Destination, holder: str, deadline: float) -> Lease | Wait:
        """The :class:`Lease` on a slot the call holds while it is performed, or the :class:`Wait` before it may go.

        ``holder`` is the call's message id, ``deadline`` when its lease runs out: its worst case plus
        :func:`lease_margin` (seconds).
        """
        slot = Lease()
        if destination.max_concurrency is not None:
            slots = flow_key(self.namespace, host, "in-flight")
            if not self._acquire(keys=[slots], args=[holder, destination.max_concurrency, lease_ms(deadline)]):
                return Wait(SLOT_WAIT_SECONDS, "concurrency", f"{destination.max_concurrency} calls in flight")
            slot = Lease(lambda: self.client.zrem(slots, holder))
        if destination.rate is not None:
            window = WindowRateLimiter(
                self.backend,
                flow_key(self.namespace, host, "rate"),
                limit=destination.rate.calls,
                window=int(destination.rate.per),
            )
            with window.acquire(raise_on_failure=False) as admitted:
                if not admitted:
                    slot.release()
                    seconds = 1.0 if destination.rate.per == 1 else 60 - time.time() % 60
                    return Wait(seconds, "rate", f"rate {destination.rate}")
        return slot

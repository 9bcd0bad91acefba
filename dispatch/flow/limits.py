"""A host's ``max_concurrency`` and ``rate``, across every worker: dramatiq's own rate limiters, on Redis.

``ConcurrentRateLimiter`` counts calls in flight and ``WindowRateLimiter``
calls per window, on dramatiq's Redis rate-limiter backend.  A worker
killed while it holds a slot does not give it back; the slot's key expires
:data:`SLOT_TTL_SECONDS` after the host's last call, which frees it.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from dramatiq.rate_limits import ConcurrentRateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend as RateLimiterBackend

from ..destinations import Destination
from .keys import flow_key

#: How long an unused concurrency slot lives: a killed worker's slot is freed this long after the host's last call.
SLOT_TTL_SECONDS = 15 * 60

#: The wait for a free concurrency slot, before jitter.
SLOT_WAIT_SECONDS = 0.5


class Wait(NamedTuple):
    """Why a call may not go now, and for how long it waits."""

    seconds: float
    reason: str  # "breaker", "concurrency" or "rate": the label of dispatch_flow_waits_total
    detail: str  # for the log line


class Slot:
    """A concurrency slot held by one call (or none, for a host without ``max_concurrency``)."""

    def __init__(self, acquired: Any = None) -> None:
        self._acquired = acquired

    def release(self) -> None:
        """Give the slot back; releasing again does nothing."""
        acquired, self._acquired = self._acquired, None
        if acquired is not None:
            acquired.__exit__(None, None, None)


class Limits:
    """Admits a call to a host within its limits, or says how long it waits."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.backend = RateLimiterBackend(client=client)
        self.namespace = namespace

    def admit(self, host: str, destination: Destination) -> Slot | Wait:
        """A :class:`Slot` the call holds while it is performed, or the :class:`Wait` before it may go."""
        slot = Slot()
        if destination.max_concurrency is not None:
            limiter = ConcurrentRateLimiter(
                self.backend,
                flow_key(self.namespace, host, "in-flight"),
                limit=destination.max_concurrency,
                ttl=SLOT_TTL_SECONDS * 1000,
            )
            acquired = limiter.acquire(raise_on_failure=False)
            if not acquired.__enter__():
                return Wait(SLOT_WAIT_SECONDS, "concurrency", f"{destination.max_concurrency} calls in flight")
            slot = Slot(acquired)
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

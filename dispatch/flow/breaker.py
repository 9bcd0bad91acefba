"""A host's breaker, shared by every worker: it counts failed deliveries and heals itself.

A delivery whose quick attempts all failed at the transport level
(refused, reset, timed out, 429/502/503/504) is a failure; any answer the
endpoint meant to give, success or not, shows the host is up and closes
the count.  After ``failures`` consecutive failures the breaker opens for
``cooldown`` seconds: calls to the host wait.  Then the first call to come
takes the probe: it alone is performed; a success closes the breaker, a
failure opens it again for another cooldown.  The probe is a lease of its
call's (``SET probe <holder> PX <deadline>``): given back by its holder
when the probe call waits after all, is cancelled or ends, and running out
by itself at the call's deadline when its worker was killed.  The counting and the
transitions are Lua scripts, so every worker sees one state, and the
worker that makes a transition is the one that logs it.
"""

from __future__ import annotations

from typing import Any

from ..destinations import BreakerConfig
from ..redaction import get_logger
from .keys import flow_key
from .limits import Lease, Wait, lease_ms

logger = get_logger("dispatch.flow")

#: What a host's breaker can be (``dispatch hosts`` also says "off" for a host without one).
BREAKER_STATES = ("closed", "open", "half-open")

#: How long a host's count of failures is kept after its last failure (and cooldown).
FAILURES_TTL_SECONDS = 15 * 60

# KEYS: failures, open.  ARGV: threshold, cooldown ms, ttl ms.  Returns 1 when this failure opened the breaker.
_FAILED = """
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if failures >= tonumber(ARGV[1]) and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
    return 1
end
return 0
"""

# KEYS: failures, probe.  ARGV: threshold.  Returns 1 when this success closed an opened breaker.
_SUCCEEDED = """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures == 0 then
    return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
if failures >= tonumber(ARGV[1]) then
    return 1
end
return 0
"""

# KEYS: probe.  ARGV: holder.  The probe is given back only by the call holding it.
_RELEASE_PROBE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Breaker:
    """The breakers of every host, in Redis: whether a call may go, and what its delivery did."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._failed = client.register_script(_FAILED)
        self._succeeded = client.register_script(_SUCCEEDED)
        self._release_probe = client.register_script(_RELEASE_PROBE)

    def _key(self, host: str, what: str) -> str:
        return flow_key(self.namespace, host, what)

    def wait(self, host: str, config: BreakerConfig, holder: str, deadline: float) -> Lease | Wait:
        """A :class:`Lease` when the breaker lets the call through (closed: nothing held; or the probe), else the wait.

        ``holder`` is the call's message id, ``deadline`` the longest it can take (seconds).
        """
        failures, open_ms = (
            self.client.pipeline(transaction=False)
            .get(self._key(host, "failures"))
            .pttl(self._key(host, "open"))
            .execute()
        )
        if int(failures or 0) < config.failures:
            return Lease()  # closed
        if open_ms and open_ms > 0:
            return Wait(open_ms / 1000, "breaker", "breaker open")
        probe = self._key(host, "probe")
        if self.client.set(probe, holder, nx=True, px=lease_ms(deadline)):
            logger.info("breaker for %s: cooldown over, sending one probe call", host)
        elif self.client.get(probe) != holder.encode():  # not this call's own probe, delivered again
            probe_left_ms = max(self.client.pttl(probe), 100)
            return Wait(probe_left_ms / 1000, "breaker", "breaker half-open, probe in flight")
        return Lease(lambda: self._release_probe(keys=[probe], args=[holder]))

    def record(self, host: str, config: BreakerConfig, failed: bool) -> None:
        """Count a delivery: a failure may open the breaker, a success closes it."""
        failures, opened, probe = (self._key(host, what) for what in ("failures", "open", "probe"))
        if failed:
            ttl_ms = int((config.cooldown + FAILURES_TTL_SECONDS) * 1000)
            if self._failed(keys=[failures, opened], args=[config.failures, int(config.cooldown * 1000), ttl_ms]):
                logger.warning(
                    "breaker for %s opened after %d consecutive transport failures; calls wait %gs",
                    host,
                    config.failures,
                    config.cooldown,
                )
        elif self._succeeded(keys=[failures, probe], args=[config.failures]):
            logger.warning("breaker for %s closed: a call succeeded", host)

    def close(self, host: str) -> bool:
        """Close the host's breaker by hand (an operator's call): its failures, cooldown and probe are forgotten.

        True if there was anything to forget.
        """
        closed = bool(self.client.delete(*(self._key(host, what) for what in ("failures", "open", "probe"))))
        if closed:
            logger.warning("breaker for %s closed by hand", host)
        return closed


def breaker_state(config: BreakerConfig | None, failures: int, opened: bool) -> str:
    """One of :data:`BREAKER_STATES` from the shared counters, or ``off`` for a host without a breaker."""
    if config is None:
        return "off"
    if failures < config.failures:
        return "closed"
    return "open" if opened else "half-open"

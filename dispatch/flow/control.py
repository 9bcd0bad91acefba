"""Flow per destination: per-host limits across workers, and a breaker that heals itself.

The destinations file (:mod:`dispatch.destinations`) gives a host
``max_concurrency``, ``rate`` and ``breaker``; this middleware enforces them
for every worker process at once, through Redis (the results store's).

**A call that may not go now waits as a delayed message.**  Just before a
call is performed, :class:`FlowControl` asks, in this order: is the host's
breaker open?  is a concurrency slot free?  is there room in the rate
window?  If not, a copy of the message (same id, same options, so the same
attempt count and ``Idempotency-Key``) is queued again with a delay, and
the original is acked and skipped.  It holds no worker thread while it
waits, is not an attempt, and is not a failure.  If the copy cannot be
queued, the call is performed after all: a limit overrun is better than a
lost call.  Waits are short and jittered (a slot, a rate window, the rest
of a cooldown), so calls waiting for a host take their turns at random
rather than in a fixed order that could starve one.

**The limiters are dramatiq's own**: ``ConcurrentRateLimiter`` for
``max_concurrency`` and ``WindowRateLimiter`` for ``rate``, on dramatiq's
Redis rate-limiter backend.  A worker killed while it holds a slot does not
give it back; the slot's key expires :data:`SLOT_TTL_SECONDS` after the
host's last call, which frees it.

**The breaker counts deliveries.**  A delivery whose quick attempts all
failed at the transport level (refused, reset, timed out, 429/502/503/504)
is a failure; any answer the endpoint meant to give, success or not, shows
the host is up and closes the count.  After ``failures`` consecutive
failures the breaker opens for ``cooldown`` seconds: calls to the host wait.
Then the first call to come takes the probe: it alone is performed; a
success closes the breaker, a failure opens it again for another cooldown.
The counting and the transitions are Lua scripts, so every worker sees one
state, and the worker that makes a transition is the one that logs it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import Any, NamedTuple

import dramatiq
from dramatiq.middleware import SkipMessage
from dramatiq.rate_limits import ConcurrentRateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend as RateLimiterBackend

from .call import Call, is_call
from .destinations import UNLISTED, Destination, Destinations
from .errors import TransportError
from .protocol import parse_target, port_of

logger = logging.getLogger("dispatch.flow")

#: How long an unused concurrency slot lives: a killed worker's slot is freed this long after the host's last call.
SLOT_TTL_SECONDS = 15 * 60

#: The wait for a free concurrency slot, before jitter.
SLOT_WAIT_SECONDS = 0.5

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


class Wait(NamedTuple):
    """Why a call may not go now, and for how long it waits."""

    seconds: float
    reason: str  # "breaker", "concurrency" or "rate": the label of dispatch_flow_waits_total
    detail: str  # for the log line


#: What a host's breaker can be (``dispatch hosts`` also says "off" for a host without one).
BREAKER_STATES = ("closed", "open", "half-open")


@dataclasses.dataclass(frozen=True)
class HostState:
    """What ``dispatch hosts`` shows for one host."""

    host: str
    max_concurrency: int | None
    rate: str | None
    in_flight: int
    breaker: str  # "closed", "open", "half-open" (waiting for its probe), or "off"
    failures: int


class FlowControl(dramatiq.Middleware):
    """Admits each call to a limited host, or postpones it as a delayed message; feeds the host's breaker."""

    def __init__(self, destinations: Destinations, client: Any, namespace: str = "dispatch") -> None:
        self.destinations = destinations
        self.client = client
        self.namespace = namespace
        self.limiter_backend = RateLimiterBackend(client=client)
        self._failed = client.register_script(_FAILED)
        self._succeeded = client.register_script(_SUCCEEDED)
        # Per worker thread, for the call it performs: its (host, destination) and the slot it holds.
        self._held = threading.local()

    # -- keys -------------------------------------------------------------------------------

    def key(self, host: str, what: str) -> str:
        return f"{self.namespace}:flow:{host}:{what}"

    def destination_of(self, message: dramatiq.Message) -> tuple[str, Destination]:
        """The name a call's limits are counted under, and its destinations entry.

        A listed host counts under its name in the file (``api.example.com``
        covers every port); a host under ``[defaults]`` under its own ``host:port``.
        """
        try:
            target = parse_target(Call.from_message(message).url)
        except ValueError:  # a message put on the queue by hand: the transport refuses it, unlimited
            return "", UNLISTED
        port = port_of(target)
        destination = self.destinations.for_host(target.host or "", port)
        listed = destination is not self.destinations.defaults
        return destination.name if listed else f"{target.host}:{port}", destination

    # -- the hooks --------------------------------------------------------------------------

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._held.slot = self._held.destination = None
        if not is_call(broker, message):
            return
        host, destination = self._held.destination = self.destination_of(message)  # read again after the call
        if not destination.limited:
            return
        try:
            wait = self._admit(host, destination)
        except Exception as error:  # Redis down: perform the call rather than stop every call
            logger.warning("call %s: limits of %s unknown (%s); performing it", message.message_id, host, error)
            return
        if wait is not None:
            self._postpone(broker, message, host, wait)

    def after_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.Message, *, result: Any = None, exception: Any = None
    ) -> None:
        self._release()
        held, self._held.destination = getattr(self._held, "destination", None), None
        if held is None:  # not a call, or this middleware never saw it
            return
        host, destination = held
        if destination.breaker is None:
            return
        failed = isinstance(exception, (dramatiq.Retry, TransportError))
        try:
            self._record(host, destination, failed)
        except Exception as error:
            logger.warning("cannot record the outcome of a call to %s for its breaker: %s", host, error)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._release()  # admitted, then skipped as cancelled: the slot goes back
        self._held.destination = None

    # -- admission --------------------------------------------------------------------------

    def _admit(self, host: str, destination: Destination) -> Wait | None:
        """None when the call may go now, else how long it waits, and why."""
        if destination.breaker is not None:
            wait = self._breaker_wait(host, destination)
            if wait is not None:
                return wait
        slot = None
        if destination.max_concurrency is not None:
            limiter = ConcurrentRateLimiter(
                self.limiter_backend,
                self.key(host, "in-flight"),
                limit=destination.max_concurrency,
                ttl=SLOT_TTL_SECONDS * 1000,
            )
            slot = limiter.acquire(raise_on_failure=False)
            if not slot.__enter__():
                return Wait(SLOT_WAIT_SECONDS, "concurrency", f"{destination.max_concurrency} calls in flight")
        if destination.rate is not None:
            window = WindowRateLimiter(
                self.limiter_backend,
                self.key(host, "rate"),
                limit=destination.rate.calls,
                window=int(destination.rate.per),
            )
            with window.acquire(raise_on_failure=False) as acquired:
                if not acquired:
                    if slot is not None:
                        slot.__exit__(None, None, None)
                    seconds = 1.0 if destination.rate.per == 1 else 60 - time.time() % 60
                    return Wait(seconds, "rate", f"rate {destination.rate}")
        self._held.slot = slot
        return None

    def _breaker_wait(self, host: str, destination: Destination) -> Wait | None:
        failures, open_ms = (
            self.client.pipeline(transaction=False)
            .get(self.key(host, "failures"))
            .pttl(self.key(host, "open"))
            .execute()
        )
        if int(failures or 0) < destination.breaker.failures:
            return None  # closed
        if open_ms and open_ms > 0:
            return Wait(open_ms / 1000, "breaker", "breaker open")
        probe_ms = int(destination.breaker.cooldown * 1000)
        if self.client.set(self.key(host, "probe"), "1", nx=True, px=probe_ms):
            logger.info("breaker for %s: cooldown over, sending one probe call", host)
            return None  # this call is the probe
        probe_left_ms = max(self.client.pttl(self.key(host, "probe")), 100)
        return Wait(probe_left_ms / 1000, "breaker", "breaker half-open, probe in flight")

    def _record(self, host: str, destination: Destination, failed: bool) -> None:
        breaker = destination.breaker
        keys = self.key(host, "failures"), self.key(host, "open"), self.key(host, "probe")
        if failed:
            ttl_ms = int((breaker.cooldown + SLOT_TTL_SECONDS) * 1000)
            if self._failed(keys=keys[:2], args=[breaker.failures, int(breaker.cooldown * 1000), ttl_ms]):
                logger.warning(
                    "breaker for %s opened after %d consecutive transport failures; calls wait %gs",
                    host,
                    breaker.failures,
                    breaker.cooldown,
                )
        elif self._succeeded(keys=[keys[0], keys[2]], args=[breaker.failures]):
            logger.warning("breaker for %s closed: a call succeeded", host)

    def _release(self) -> None:
        slot = getattr(self._held, "slot", None)
        self._held.slot = None
        if slot is not None:
            slot.__exit__(None, None, None)

    def _postpone(self, broker: dramatiq.Broker, message: dramatiq.Message, host: str, wait: Wait) -> None:
        waits = message.options.get("flow_waits", 0) + 1
        delay_ms = int(wait.seconds * 1000 * random.uniform(1.0, 1.5)) + 1  # jitter: waiting calls take turns at random
        try:
            broker.enqueue(message.copy(options={"flow_waits": waits}), delay=delay_ms)
        except Exception as error:
            logger.warning(
                "call %s: cannot postpone it (%s); performing it despite %s", message.message_id, error, wait.detail
            )
            self._release()
            return
        logger.debug("call %s to %s waits %dms (%s), wait %d", message.message_id, host, delay_ms, wait.detail, waits)
        message.options["postponed"] = wait.reason  # no outcome to store, no skip warning; a metrics label
        raise SkipMessage(f"call {message.message_id} waits for {host}: {wait.detail}")

    # -- for dispatch hosts -----------------------------------------------------------------

    def host_states(self) -> list[HostState]:
        """Every listed host's limits and live state, and each other host that has live state."""
        hosts = dict(self.destinations.hosts)
        for key in self.client.scan_iter(f"{self.namespace}:flow:*", count=1000):
            host = key.decode().split(":flow:", 1)[1].rsplit(":", 1)[0]
            hostname, _, port = host.rpartition(":")
            hosts.setdefault(host, self.destinations.for_host(hostname, int(port) if port.isdigit() else None))
        return [self._state(host, destination) for host, destination in sorted(hosts.items())]

    def _state(self, host: str, destination: Destination) -> HostState:
        keys = [self.key(host, what) for what in ("in-flight", "failures", "open")]
        in_flight, failures, opened = self.client.mget(keys)
        failures = int(failures or 0)
        if destination.breaker is None:
            breaker = "off"
        elif failures < destination.breaker.failures:
            breaker = "closed"
        elif opened:
            breaker = "open"
        else:
            breaker = "half-open"
        return HostState(
            host,
            destination.max_concurrency,
            str(destination.rate) if destination.rate else None,
            int(in_flight or 0),
            breaker,
            failures,
        )

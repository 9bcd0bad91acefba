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
queued (RabbitMQ refusing it, or blocking publishers past ``DISPATCH_SEND_TIMEOUT``
under an alarm), the call is performed after all: a limit overrun is better
than a lost call, or than one redelivered again and again while the alarm
lasts.  Waits are short and jittered (a slot, a rate window, the rest
of a cooldown), so calls waiting for a host take their turns at random
rather than in a fixed order that could starve one.

**What a call holds, it holds as a lease** (its concurrency slot, the
breaker's probe), taken under its message id and lasting until the call's
own deadline (:attr:`dispatch.options.CallOptions.worst_case`) plus a
margin.  It is given back when the call ends, waits after all or is
cancelled; a worker killed with ``kill -9`` gives nothing back, and its
leases run out by themselves.

The pieces: :mod:`~dispatch.flow.limits` (concurrency and rate, dramatiq's
limiters), :mod:`~dispatch.flow.breaker` (the shared breaker and its Lua),
:mod:`~dispatch.flow.report` (each host's state, for ``dispatch hosts``).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage

from ..call import Call, is_call
from ..destinations import UNLISTED, Destination
from ..errors import TransportError
from ..options import worst_case
from ..redaction import get_logger
from ..settings import Settings
from ..urlsafety import parse_target, port_of
from .breaker import Breaker
from .limits import Lease, Limits, Wait, lease_margin
from .report import HostState, host_states

logger = get_logger("dispatch.flow")


class FlowControl(dramatiq.Middleware):
    """Admits each call to a limited host, or postpones it as a delayed message; feeds the host's breaker."""

    def __init__(self, settings: Settings, client: Any, namespace: str = "dispatch") -> None:
        self.settings = settings
        self.destinations = settings.destinations
        self.client = client
        self.namespace = namespace
        self.limits = Limits(client, namespace)
        self.breaker = Breaker(client, namespace)
        # Per worker thread, for the call it performs: its (host, destination) and the leases it holds.
        self._held = threading.local()

    @classmethod
    def build(cls, settings: Settings, client: Any | None, namespace: str) -> FlowControl | None:
        """Flow control for the destinations file of ``settings``, through Redis ``client``, shared by every worker.

        None when the destinations file sets no limit, or there is no Redis (outcomes kept in memory).
        """
        destinations = settings.destinations
        limited = destinations.defaults.limited or any(d.limited for d in destinations.hosts.values())
        return cls(settings, client, namespace) if limited and client is not None else None

    def destination_of(self, message: dramatiq.Message | MessageProxy) -> tuple[str, Destination]:
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

    def host_states(self) -> list[HostState]:
        """Every listed host's limits and live state, and each other host that has live state."""
        return host_states(self.destinations, self.client, self.namespace)

    # -- the hooks --------------------------------------------------------------------------

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._held.leases = []
        self._held.destination = None
        if not is_call(broker, message):
            return
        host, destination = self._held.destination = self.destination_of(message)  # read again after the call
        if not destination.limited:
            return
        try:
            wait = self._admit(host, destination, message)
        except Exception as error:  # Redis down: perform the call rather than stop every call
            logger.warning("call %s: limits of %s unknown (%s); performing it", message.message_id, host, error)
            return
        if wait is not None:
            self._postpone(broker, message, host, wait)

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
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
            self.breaker.record(host, destination.breaker, failed)
        except Exception as error:
            logger.warning("cannot record the outcome of a call to %s for its breaker: %s", host, error)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._release()  # admitted, then skipped as cancelled: the slot and the probe go back
        self._held.destination = None

    # -- admission --------------------------------------------------------------------------

    def _admit(self, host: str, destination: Destination, message: MessageProxy) -> Wait | None:
        """None when the call may go now (holding its leases), else how long it waits, and why."""
        holder = message.message_id
        deadline = worst_case(Call.from_message(message).options, self.settings) + lease_margin(self.settings)
        leases: list[Lease] = self._held.leases
        if destination.breaker is not None:
            probe = self.breaker.wait(host, destination.breaker, holder, deadline)
            if isinstance(probe, Wait):
                return probe
            leases.append(probe)
        admitted = self.limits.admit(host, destination, holder, deadline)
        if isinstance(admitted, Wait):
            self._release()  # a probe that must wait gives the probe back
            return admitted
        leases.append(admitted)
        return None

    def _release(self) -> None:
        leases: list[Lease] = getattr(self._held, "leases", [])
        self._held.leases = []
        for lease in leases:
            try:
                lease.release()
            except Exception as error:  # Redis down: the lease runs out at the call's deadline
                logger.warning("cannot give back a lease (it runs out by itself): %s", error)

    def _postpone(self, broker: dramatiq.Broker, message: MessageProxy, host: str, wait: Wait) -> None:
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

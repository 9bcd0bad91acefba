"""What ``dispatch hosts`` and the metrics show: each host's limits and its live, shared state."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..destinations import Destination, Destinations
from .breaker import breaker_state
from .keys import flow_key, flow_pattern, host_of


@dataclasses.dataclass(frozen=True)
class HostState:
    """What ``dispatch hosts`` shows for one host."""

    host: str
    max_concurrency: int | None
    rate: str | None
    in_flight: int
    breaker: str  # "closed", "open", "half-open" (waiting for its probe), or "off"
    failures: int
    holders: tuple[str, ...] = ()  # the message ids of the calls holding a slot, their leases unexpired
    probe: str | None = None  # the message id of the half-open breaker's probe call


def host_states(destinations: Destinations, client: Any, namespace: str) -> list[HostState]:
    """Every listed host's limits and live state, and each other host that has live state."""
    hosts = dict(destinations.hosts)
    for key in client.scan_iter(flow_pattern(namespace), count=1000):
        host = host_of(key)
        hostname, _, port = host.rpartition(":")
        hosts.setdefault(host, destinations.for_host(hostname, int(port) if port.isdigit() else None))
    return [_state(host, destination, client, namespace) for host, destination in sorted(hosts.items())]


def _state(host: str, destination: Destination, client: Any, namespace: str) -> HostState:
    seconds, micros = client.time()  # the leases' clock: Redis's, as the scripts that take them read it
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    slots, failures, opened, probe = (
        flow_key(namespace, host, what) for what in ("in-flight", "failures", "open", "probe")
    )
    if client.type(slots) == b"string":  # the counter of a version before leases: a count, no holders
        holders, in_flight = [], int(client.get(slots) or 0)
    else:
        holders = client.zrangebyscore(slots, f"({now_ms}", "+inf")
        in_flight = len(holders)
    failed, is_open, probing = client.mget([failures, opened, probe])
    return HostState(
        host,
        destination.max_concurrency,
        str(destination.rate) if destination.rate else None,
        in_flight,
        breaker_state(destination.breaker, int(failed or 0), bool(is_open)),
        int(failed or 0),
        tuple(holder.decode() for holder in holders),
        probing.decode() if probing else None,
    )

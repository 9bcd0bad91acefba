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


def host_states(destinations: Destinations, client: Any, namespace: str) -> list[HostState]:
    """Every listed host's limits and live state, and each other host that has live state."""
    hosts = dict(destinations.hosts)
    for key in client.scan_iter(flow_pattern(namespace), count=1000):
        host = host_of(key)
        hostname, _, port = host.rpartition(":")
        hosts.setdefault(host, destinations.for_host(hostname, int(port) if port.isdigit() else None))
    return [_state(host, destination, client, namespace) for host, destination in sorted(hosts.items())]


def _state(host: str, destination: Destination, client: Any, namespace: str) -> HostState:
    keys = [flow_key(namespace, host, what) for what in ("in-flight", "failures", "open")]
    in_flight, failures, opened = client.mget(keys)
    return HostState(
        host,
        destination.max_concurrency,
        str(destination.rate) if destination.rate else None,
        int(in_flight or 0),
        breaker_state(destination.breaker, int(failures or 0), bool(opened)),
        int(failures or 0),
    )

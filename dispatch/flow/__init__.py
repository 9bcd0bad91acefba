"""Flow per destination: per-host limits across workers, and a breaker that heals itself.

* :mod:`~dispatch.flow.control` -- :class:`FlowControl`, the worker middleware: admit a call, or postpone it;
* :mod:`~dispatch.flow.limits` -- ``max_concurrency`` as leases that run out, ``rate`` on dramatiq's limiter;
* :mod:`~dispatch.flow.breaker` -- the shared breaker (its Lua scripts);
* :mod:`~dispatch.flow.report` -- each host's limits and live state (``dispatch hosts``, metrics);
* :mod:`~dispatch.flow.keys` -- the Redis keys they share.
"""

from __future__ import annotations

from .breaker import BREAKER_STATES, Breaker, breaker_state
from .control import FlowControl
from .limits import LEASE_MARGIN_SECONDS, SLOT_WAIT_SECONDS, Lease, Limits, Wait
from .report import HostState, host_states

__all__ = [
    "BREAKER_STATES",
    "LEASE_MARGIN_SECONDS",
    "SLOT_WAIT_SECONDS",
    "Breaker",
    "FlowControl",
    "HostState",
    "Lease",
    "Limits",
    "Wait",
    "breaker_state",
    "host_states",
]

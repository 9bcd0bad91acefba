"""Flow per destination: per-host limits across workers, and a breaker that heals itself.

* :mod:`~dispatch.flow.control` -- :class:`FlowControl`, the worker middleware: admit a call, or postpone it;
* :mod:`~dispatch.flow.limits` -- ``max_concurrency`` and ``rate`` on dramatiq's rate limiters;
* :mod:`~dispatch.flow.breaker` -- the shared breaker (its Lua scripts);
* :mod:`~dispatch.flow.report` -- each host's limits and live state (``dispatch hosts``, metrics);
* :mod:`~dispatch.flow.keys` -- the Redis keys they share.
"""

from __future__ import annotations

from .breaker import BREAKER_STATES, Breaker, breaker_state
from .control import FlowControl
from .limits import SLOT_TTL_SECONDS, SLOT_WAIT_SECONDS, Limits, Slot, Wait
from .report import HostState, host_states

__all__ = [
    "BREAKER_STATES",
    "SLOT_TTL_SECONDS",
    "SLOT_WAIT_SECONDS",
    "Breaker",
    "FlowControl",
    "HostState",
    "Limits",
    "Slot",
    "Wait",
    "breaker_state",
    "host_states",
]

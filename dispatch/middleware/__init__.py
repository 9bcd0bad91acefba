"""Worker middleware that belongs to dispatch, one a module, and the list a broker is built with.

Features that act around every message are dramatiq middleware hooks, not
branches in the actor: the actor performs one call, the hooks observe it.

* :mod:`~dispatch.middleware.call_log` -- one INFO line per finished call;
* :mod:`~dispatch.middleware.skip_cancelled` -- the claim: a cancelled call is never sent, nor an unclaimed one;
* :mod:`~dispatch.middleware.pool_sizing` -- Redis and HTTP pools sized to the worker's threads;
* :mod:`~dispatch.middleware.store_check` -- a results store that may evict outcomes is named at boot;
* :mod:`~dispatch.middleware.durable_retries` -- a scheduled wait is recorded; one that cannot be queued is
  dead-lettered;
* :mod:`~dispatch.middleware.time_limit` -- a call's time limit is its own worst case, not dramatiq's 10 minutes;

and, from their own families, :class:`~dispatch.results.DurableResults`,
:class:`~dispatch.flow.FlowControl` and :class:`~dispatch.tracing.Tracing`.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage, Retries, TimeLimit
from dramatiq.middleware import default_middleware as dramatiq_default_middleware

from .. import tracing
from ..flow import FlowControl
from ..results import CallResultsBackend, DurableResults, ResultsBackend
from ..results.backends import redis_clients
from ..results.states import CallStates
from ..settings import Settings
from ..transport import Transport
from .call_log import CallLog, call_log
from .durable_retries import DurableRetries
from .pool_sizing import REDIS_HEADROOM, PoolSizing
from .skip_cancelled import SkipCancelled
from .store_check import EvictionCheck
from .time_limit import CallTimeLimit

__all__ = [
    "REDIS_HEADROOM",
    "CallLog",
    "CallTimeLimit",
    "DurableRetries",
    "EvictionCheck",
    "PoolSizing",
    "SkipCancelled",
    "call_log",
    "default_middleware",
]


def default_middleware(
    settings: Settings,
    results: ResultsBackend,
    call_states: CallStates,
    flow_control: FlowControl | None,
    transport: Transport,
) -> list[dramatiq.Middleware]:
    """dramatiq's default middleware (Retries made durable, TimeLimit replaced), then current message, tracing
    (with the ``otel`` extra), results, call log, flow control, cancellation, pool sizing and the call's time
    limit -- in the order they must run."""
    defaults = [m for m in dramatiq_default_middleware if m is not TimeLimit]
    retries = DurableRetries(call_states, patience=settings.results_store_patience)
    return [retries if m is Retries else m() for m in defaults] + [
        CurrentMessage(),
        *([tracing.Tracing()] if tracing.enabled() else []),  # first: its span covers the call, waits and skips too
        DurableResults(
            backend=results, result_ttl=int(settings.result_ttl * 1000), patience=settings.results_store_patience
        ),
        CallLog(),
        *([flow_control] if flow_control else []),  # before SkipCancelled: a call waiting for its host can be cancelled
        SkipCancelled(call_states, settings),
        PoolSizing(redis_clients(results), transport),
        *([EvictionCheck(results.write_client)] if isinstance(results, CallResultsBackend) else []),
        CallTimeLimit(settings),  # last: armed just before the call, disarmed before any other hook runs after it
    ]

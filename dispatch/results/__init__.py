"""What a call leaves behind: its outcome, and its state before it has one.

* :mod:`~dispatch.results.backends` -- the outcomes store, in Redis or in memory;
* :mod:`~dispatch.results.states` -- scheduled / started / cancelled, atomically, beside the outcome;
* :mod:`~dispatch.results.middleware` -- :class:`DurableResults`, no ack without a stored outcome.
"""

from __future__ import annotations

from .backends import NAMESPACE, CallResultsBackend, MemoryResultsBackend, ResultsBackend, results_backend
from .middleware import DurableResults
from .states import CANCELLED, SCHEDULED, STARTED, CallStates, MemoryCallStates, RedisCallStates

__all__ = [
    "CANCELLED",
    "NAMESPACE",
    "SCHEDULED",
    "STARTED",
    "CallResultsBackend",
    "CallStates",
    "DurableResults",
    "MemoryCallStates",
    "MemoryResultsBackend",
    "RedisCallStates",
    "ResultsBackend",
    "results_backend",
]

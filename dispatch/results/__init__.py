"""What a call leaves behind: its outcome, and its state before it has one.

* :mod:`~dispatch.results.backends` -- the outcomes store, in Redis or in memory;
* :mod:`~dispatch.results.states` -- one record per call (state, outcome, attempts), one script per transition;
* :mod:`~dispatch.results.middleware` -- :class:`DurableResults`, an outcome in hand is stored, never re-earned.
"""

from __future__ import annotations

from .backends import NAMESPACE, CallResultsBackend, MemoryResultsBackend, ResultsBackend, results_backend
from .middleware import DurableResults
from .states import (
    BUSY,
    CANCELLED,
    CLAIMED,
    DONE,
    FAILURE,
    SCHEDULED,
    STARTED,
    SUCCESS,
    WAITING,
    CallStates,
    MemoryCallStates,
    RedisCallStates,
)

__all__ = [
    "BUSY",
    "CANCELLED",
    "CLAIMED",
    "DONE",
    "FAILURE",
    "NAMESPACE",
    "SCHEDULED",
    "STARTED",
    "SUCCESS",
    "WAITING",
    "CallResultsBackend",
    "CallStates",
    "DurableResults",
    "MemoryCallStates",
    "MemoryResultsBackend",
    "RedisCallStates",
    "ResultsBackend",
    "results_backend",
]

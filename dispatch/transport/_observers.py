"""The one hook around each attempt: observers (metrics, tracing) told when it starts, what it got, how it ended.

An :class:`AttemptObserver` opens a context around every HTTP attempt: the
context sees the attempt's duration and the exception it ended with, and
the :class:`Observation` it yields is told each status the attempt got.
:mod:`dispatch.tracing` makes a client span of it, :mod:`dispatch.metrics`
counts and times it.  Observers must be quick and must not raise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol


class Observation(Protocol):
    """What an observer is told while one attempt runs."""

    def answered(self, status: int) -> None:
        """The attempt got an answer with ``status`` (each one, redirects included: the last is the attempt's)."""
        ...


class Unobserved:
    """An observation that listens to nothing: for an observer that only times and counts."""

    def answered(self, status: int) -> None:
        pass


class AttemptObserver(Protocol):
    """Something told about every attempt a :class:`~dispatch.transport.Transport` makes."""

    def observe(self, method: str, url: str) -> AbstractContextManager[Observation]:
        """The context one attempt of ``method url`` (the call's URL) runs in."""
        ...


UNOBSERVED = Unobserved()


class _Observations:
    def __init__(self, observations: Sequence[Observation]) -> None:
        self.observations = observations

    def answered(self, status: int) -> None:
        for observation in self.observations:
            observation.answered(status)


def observing(observers: Sequence[AttemptObserver], method: str, url: str) -> AbstractContextManager[Observation]:
    """One context for every observer in ``observers``, the first outermost."""
    if not observers:
        return contextlib.nullcontext(UNOBSERVED)
    if len(observers) == 1:
        return observers[0].observe(method, url)
    return _all(observers, method, url)


@contextlib.contextmanager
def _all(observers: Sequence[AttemptObserver], method: str, url: str) -> Iterator[Observation]:
    with contextlib.ExitStack() as stack:
        yield _Observations([stack.enter_context(observer.observe(method, url)) for observer in observers])

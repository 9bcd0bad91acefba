"""Every attempt of a delivery, on record: what the transport tried, when, for how long, and what came back.

:data:`RECORDER` is one of the transport's attempt observers
(:mod:`dispatch.transport._observers`).  In the worker thread making a
delivery it keeps a list with one dict per HTTP attempt::

    {"at": "2024-05-01T12:00:00.123Z",  # when the attempt started (UTC, ms)
     "duration_ms": 12.5,
     "status_code": 503,                # the answer's status; None when none came (refused, reset, timed out)
     "error": "TransportError",         # None for the attempt that succeeded, else the package's error class
     "detail": "HTTP 503 ...",          # at most 300 characters, redacted: never a secret
     "wire": True}                      # the request was (perhaps partly) written

``wire`` is False only for an attempt that never had a connection to write
on: a refused connection, a name that does not resolve, a connect timeout,
a destination the policy refused.  The call record keeps whether any attempt
of a call reached the wire, which decides whether it may still be cancelled.

The record is per delivery, not per call: :func:`reset` clears it when a
delivery starts and :func:`take_delivery_attempts` hands it to whatever
stores it with the delivery's outcome (the results store's scripts number
the attempts over the call's whole life).  A thread-local list, because a
message's middleware hooks and its attempts run in the same worker thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from .errors import DestinationRefused, DispatchError, TransportError
from .redaction import redact
from .retries import AttemptFailed

#: The longest ``detail`` kept.
MAX_DETAIL = 300


class _Observation:
    def __init__(self) -> None:
        self.status: int | None = None

    def answered(self, status: int) -> None:
        self.status = status


class AttemptRecorder:
    """The attempt observer that keeps, per worker thread, the attempts of the current delivery."""

    def __init__(self) -> None:
        self._local = threading.local()

    def reset(self, delivery: str = "") -> None:
        """Forget this thread's attempts: a delivery starts (``delivery``: its token, the claim's holder)."""
        self._local.attempts = []
        self._local.delivery = delivery

    def delivery(self) -> str:
        """The token of this thread's current delivery ("" before any): the record appends its attempts once."""
        token: str = getattr(self._local, "delivery", "")
        return token

    def take_delivery_attempts(self) -> list[dict[str, Any]]:
        """This thread's attempts since :meth:`reset`, oldest first; the list is cleared."""
        attempts: list[dict[str, Any]] = getattr(self._local, "attempts", [])
        self._local.attempts = []
        return attempts

    @contextlib.contextmanager
    def observe(self, method: str, url: str) -> Iterator[_Observation]:
        at = _utc_now()
        started = time.perf_counter()
        observation = _Observation()
        error: BaseException | None = None
        try:
            yield observation
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._append(describe(at, time.perf_counter() - started, observation.status, error))

    def _append(self, attempt: dict[str, Any]) -> None:
        attempts = getattr(self._local, "attempts", None)
        if attempts is None:
            attempts = self._local.attempts = []
        attempts.append(attempt)


def describe(at: str, seconds: float, status: int | None, error: BaseException | None) -> dict[str, Any]:
    """One attempt's record: started ``at``, took ``seconds``, last answered ``status``, ended with ``error``."""
    if error is None:
        name, detail = None, ""
    elif isinstance(error, AttemptFailed):  # no usable answer: what the call ends with if none comes
        name, detail = TransportError.__name__, str(error)
    elif isinstance(error, DispatchError):
        name, detail = type(error).__name__, str(error)
    elif isinstance(error, Exception):  # a subclass's hook raised: named as callers see it (errors.error_from_result)
        name, detail = DispatchError.__name__, f"{type(error).__name__}: {error}"
    else:  # the worker cut the attempt short (a time limit, a shutdown): no answer is coming
        name, detail = "TransportError", f"interrupted ({type(error).__name__})"
    return {
        "at": at,
        "duration_ms": round(seconds * 1000, 3),
        "status_code": status,
        "error": name,
        "detail": redact(detail)[:MAX_DETAIL],
        "wire": status is not None or _reached_wire(error),
    }


def _reached_wire(error: BaseException | None) -> bool:
    """Whether an attempt that got no answer may have written its request (the transport says, for its failures)."""
    if isinstance(error, AttemptFailed):
        return error.reached_wire
    return not isinstance(error, DestinationRefused)  # refused before any connection; anything else may have


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: The one recorder: add it to a transport's observers to keep its attempts.
RECORDER = AttemptRecorder()
take_delivery_attempts = RECORDER.take_delivery_attempts
reset = RECORDER.reset
delivery = RECORDER.delivery

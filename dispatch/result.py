"""The handle a caller holds for one call.

:class:`CallResult` *is* the dramatiq :class:`~dramatiq.Message` that was
enqueued -- so ``message_id`` and ``get_result()`` work as dramatiq users
expect -- plus a Celery-style :meth:`CallResult.get` that speaks seconds and
re-raises the worker's own error class instead of dramatiq's generic
``ResultFailure``, its asyncio twin :meth:`CallResult.aget`, :meth:`cancel`
and :meth:`state`.  :meth:`CallResult.from_id` makes a handle for a call sent
elsewhere: outcomes are keyed by call id alone.

Whatever fails, a caller sees one of the package's errors: the results
store's failures come out of every method as
:class:`~dispatch.errors.ResultsUnavailable` (:mod:`dispatch.redis_errors`),
and a ``ResultTimeout`` says when no worker consumes the call's queue
(:mod:`dispatch.consumers`, asked once the wait has run out).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

from dramatiq import Message
from dramatiq.common import q_name
from dramatiq.results import ResultBackend, ResultFailure, ResultMissing
from dramatiq.results import ResultTimeout as DramatiqResultTimeout

from .call import ACTOR_NAME, Call
from .consumers import no_outcome_reason
from .errors import CallCancelled, ResultTimeout, error_from_result
from .redaction import redact_url
from .redis_connect import FAILOVER_ERRORS, Outage, patiently
from .redis_errors import mapped_redis_errors
from .results import CANCELLED, SCHEDULED, STARTED, WAITING, CallResultsBackend
from .runtime import get_runtime

#: The longest single blocking wait on the results store; ``get()`` with no
#: timeout waits in slices of this length so an interrupt is never far away.
_WAIT_SLICE_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A call's state and, for a finished one, its result or its error's class name and message."""

    state: str
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None


class CallResult(Message[Any]):
    """A call in flight: wait for its outcome with :meth:`get`."""

    @functools.cached_property
    def _encoded(self) -> bytes:
        return super().encode()

    def encode(self) -> bytes:
        """The message as published, encoded once: the size check at send and the broker share the bytes."""
        return self._encoded

    @classmethod
    def from_id(cls, message_id: str) -> CallResult:
        """A handle for the call with this id, sent by this process or any other: ``get()``, ``cancel()`` work."""
        if not isinstance(message_id, str) or not message_id.strip():
            raise ValueError(f"a call id is a non-empty string, not {message_id!r}")
        return cls(
            get_runtime().settings.queue, ACTOR_NAME, args=(), kwargs={}, options={}, message_id=message_id.strip()
        )

    def get(self, timeout: float | None = None) -> Any:
        """The endpoint's ``retval``; waits up to ``timeout`` seconds (None: as long as it takes).

        Raises the error the worker saw (``RemoteExecuteError``,
        ``TransportError``, ...) with the same message, ``CallCancelled`` for a
        cancelled call, or :class:`~dispatch.errors.ResultTimeout` when time
        runs out.  The results store counts whole seconds, so a fraction is
        rounded up.  A lost Redis master is waited out within the timeout:
        the wait resumes (behind Sentinel, on the new master) for up to
        ``DISPATCH_RESULTS_STORE_PATIENCE`` seconds of failures in a row.
        A store that cannot be read (still failing when time runs out) raises
        :class:`~dispatch.errors.ResultsUnavailable`, naming it.
        """
        remaining = self._wait_budget(timeout)
        settings = get_runtime().settings
        outage = Outage(settings.results_store_patience)
        failing: Exception | None = None  # the store's last error, while it fails
        with mapped_redis_errors(settings.results_url):
            while True:
                wait = min(remaining, _WAIT_SLICE_SECONDS)
                began = time.monotonic()
                try:
                    return self._unwrapped(self.get_result, block=True, timeout=int(wait * 1000))
                except DramatiqResultTimeout:
                    remaining -= wait
                    outage.clear()
                    failing = None
                except FAILOVER_ERRORS as error:
                    failing = error
                    time.sleep(min(outage.failed(error), remaining))
                    remaining -= time.monotonic() - began
                if remaining <= 0:
                    if failing is not None:
                        raise failing
                    raise self._timed_out(timeout) from None

    async def aget(self, timeout: float | None = None) -> Any:
        """:meth:`get` for asyncio code: waits on Redis with redis-py's asyncio client, holding no thread."""
        runtime = get_runtime()
        backend = runtime.results
        if not isinstance(backend, CallResultsBackend):  # the in-memory store of dispatch.testing
            return await asyncio.to_thread(self.get, timeout)
        from .redis_connect import BLOCKING_KEEPALIVE, connect_async

        remaining = self._wait_budget(timeout)
        key = backend.build_message_key(self)
        settings = runtime.settings
        client = connect_async(
            settings.results_url,
            sentinel_password=settings.sentinel_password or None,
            socket_timeout=None,
            socket_keepalive=True,
            socket_keepalive_options=BLOCKING_KEEPALIVE,
        )
        outage = Outage(settings.results_store_patience)
        failing: Exception | None = None  # the store's last error, while it fails
        with mapped_redis_errors(settings.results_url):
            try:
                while True:
                    wait = min(remaining, _WAIT_SLICE_SECONDS)
                    began = time.monotonic()
                    try:
                        data = await client.brpoplpush(key, key, max(1, int(wait)))
                    except FAILOVER_ERRORS as error:
                        failing = error
                        await asyncio.sleep(min(outage.failed(error), remaining))
                        remaining -= time.monotonic() - began
                    else:
                        if data is not None:
                            return self._unwrapped(backend.unwrap_result, res=backend.encoder.decode(data))
                        remaining -= wait
                        outage.clear()
                        failing = None
                    if remaining <= 0:
                        if failing is not None:
                            raise failing
                        raise await asyncio.to_thread(self._timed_out, timeout)
            finally:
                await client.aclose()

    def cancel(self) -> bool:
        """Make sure the call is never sent: True if so (again True when asked again, from any process), False
        if an attempt of it may have reached the wire, or it has another outcome.

        One atomic write also stores the ``CallCancelled`` outcome: ``get()`` on a cancelled call raises it.
        """
        runtime = get_runtime()  # tried again through a failover, as long as a send would be
        with mapped_redis_errors(runtime.settings.results_url):
            return patiently(lambda: runtime.call_states.cancel(self.message_id), runtime.settings.send_timeout)

    async def acancel(self) -> bool:
        """:meth:`cancel` for asyncio code: the store's one atomic write runs in a thread, the loop keeps running."""
        return await asyncio.to_thread(self.cancel)

    def state(self) -> str:
        """Where the call stands: ``scheduled``, ``pending`` (queued), ``started``, ``success``, ``failure``
        or ``cancelled``; ``pending`` also for an id nobody knows (ids are not recorded at send).
        """
        return self.snapshot().state

    def attempts(self) -> list[dict[str, Any]]:
        """Every HTTP attempt of the call so far, oldest first, over all its deliveries (the last 100).

        Each: ``attempt`` (from 1), ``at`` (ISO 8601 UTC), ``duration_ms``, ``status_code`` (None when no
        answer came), ``error`` (None for the attempt that succeeded, else the error class), ``detail``
        (at most 300 characters, never a secret).  Empty for a call not attempted yet, or unknown.
        """
        runtime = get_runtime()
        with mapped_redis_errors(runtime.settings.results_url):
            return runtime.call_states.attempts(self.message_id)

    def snapshot(self) -> Snapshot:
        """Where the call stands and, once it has one, its outcome as stored -- from one read of the store.

        The CLI's ``dispatch result`` and the gateway's ``GET /calls/{id}`` show this.
        """
        runtime = get_runtime()
        with mapped_redis_errors(runtime.settings.results_url):
            try:
                result = self.get_result(block=False)
            except ResultMissing:
                state = runtime.call_states.state(self.message_id)
                if state == WAITING:  # between scheduled deliveries: started, and no longer cancellable
                    state = STARTED
                return Snapshot(state if state in (SCHEDULED, STARTED, CANCELLED) else "pending")
            except ResultFailure as failure:
                state = CANCELLED if failure.orig_exc_type == CallCancelled.__name__ else "failure"
                return Snapshot(state, error_type=failure.orig_exc_type, error_message=failure.orig_exc_msg)
        return Snapshot("success", result=result)

    @staticmethod
    def _wait_budget(timeout: float | None) -> float:
        if timeout is not None and (not isinstance(timeout, (int, float)) or not 0 <= timeout < math.inf):
            raise ValueError(f"timeout must be zero or more seconds, not {timeout!r}")
        return math.inf if timeout is None else math.ceil(timeout)

    def _timed_out(self, timeout: float | None) -> ResultTimeout:
        """The ResultTimeout for a wait that ran out, saying why when it is plain (no worker on the queue)."""
        reason = no_outcome_reason(get_runtime().settings, q_name(self.queue_name))
        return ResultTimeout(f"no outcome for call {self.message_id} after {timeout:g} seconds: {reason}")

    @staticmethod
    def _unwrapped(read: Callable[..., Any], **kwargs: Any) -> Any:
        """``read(**kwargs)``, with a stored failure raised as the package's own error class."""
        try:
            return read(**kwargs)
        except ResultFailure as failure:
            raise error_from_result(failure.orig_exc_type, failure.orig_exc_msg) from None

    def get_result(
        self, *, backend: ResultBackend | None = None, block: bool = False, timeout: int | None = None
    ) -> Any:
        """dramatiq's own API (timeout in ms), defaulting to the backend the actor stores into.

        dramatiq would look the backend up on its global broker, which in a
        process that never built dispatch's broker is not ours.
        """
        if backend is None:
            backend = get_runtime().results
        return super().get_result(backend=backend, block=block, timeout=timeout)

    def __repr__(self) -> str:
        call = Call.from_message(self)
        return f"<CallResult {self.message_id} {call.method} {redact_url(call.url)}>"

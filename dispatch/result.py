"""The handle a caller holds for one call.

:class:`CallResult` *is* the dramatiq :class:`~dramatiq.Message` that was
enqueued -- so ``message_id`` and ``get_result()`` work as dramatiq users
expect -- plus a Celery-style :meth:`CallResult.get` that speaks seconds and
re-raises the worker's own error class instead of dramatiq's generic
``ResultFailure``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from dramatiq import Message
from dramatiq.results import ResultBackend, ResultFailure
from dramatiq.results import ResultTimeout as DramatiqResultTimeout

from .call import Call
from .errors import ResultTimeout, error_from_result
from .wiring import get_broker

#: The longest single blocking wait on the results store; ``get()`` with no
#: timeout waits in slices of this length so an interrupt is never far away.
_WAIT_SLICE_SECONDS = 60


class CallResult(Message):
    """A call in flight: wait for its outcome with :meth:`get`."""

    @functools.cached_property
    def _encoded(self) -> bytes:
        return super().encode()

    def encode(self) -> bytes:
        """The message as published, encoded once: the size check at send and the broker share the bytes."""
        return self._encoded

    def get(self, timeout: float | None = None) -> Any:
        """The endpoint's ``retval``; waits up to ``timeout`` seconds (None: as long as it takes).

        Raises the error the worker saw (``RemoteExecuteError``,
        ``TransportError``, ...) with the same message, or
        :class:`~dispatch.errors.ResultTimeout` when time runs out.
        The results store counts whole seconds, so a fraction is rounded up.
        """
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be zero or more seconds")
        remaining = math.inf if timeout is None else math.ceil(timeout)
        while True:
            wait = min(remaining, _WAIT_SLICE_SECONDS)
            try:
                return self.get_result(block=True, timeout=int(wait * 1000))
            except DramatiqResultTimeout:
                remaining -= wait
                if remaining <= 0:
                    raise ResultTimeout(f"no outcome for call {self.message_id} after {timeout} seconds") from None
            except ResultFailure as failure:
                raise error_from_result(failure.orig_exc_type, failure.orig_exc_msg) from None

    def get_result(self, *, backend: ResultBackend | None = None, block: bool = False, timeout: int | None = None):
        """dramatiq's own API (timeout in ms), defaulting to the backend the actor stores into.

        dramatiq would look the backend up on its global broker, which in a
        process that never built dispatch's broker is not ours.
        """
        if backend is None:
            backend = get_broker().get_results_backend()
        return super().get_result(backend=backend, block=block, timeout=timeout)

    def __repr__(self) -> str:
        call = Call.from_message(self)
        return f"<CallResult {self.message_id} {call.method} {call.url}>"

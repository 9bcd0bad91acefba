"""Where a call stands before it has an outcome: scheduled, started or cancelled.

An outcome (success or failure) lives in the results store; what comes
before it is a small state key beside it, ``dispatch:state:<id>``:

* ``scheduled`` -- set when a call is sent with a delay (``send_in``/``send_at``);
* ``started``   -- set by the worker, atomically, just before it performs the call;
* ``cancelled`` -- set by ``res.cancel()``, atomically, only if the call has not started.

Both transitions that race -- a worker starting the call, a caller
cancelling it -- are one Lua script each, so exactly one of them wins:
``cancel()`` answers True only if the worker will never send the call.
dramatiq-abort was considered: its ``abort()`` signals workers but cannot
answer *whether* the call had already started, which is what ``cancel()``
and ``DELETE /calls/{id}`` (409) must say.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

SCHEDULED, STARTED, CANCELLED = "scheduled", "started", "cancelled"

_CANCEL = """
local state = redis.call('GET', KEYS[1])
if state == false or state == 'scheduled' then
  redis.call('SET', KEYS[1], 'cancelled', 'PX', ARGV[1])
  return 1
end
return 0
"""

_CLAIM = """
if redis.call('GET', KEYS[1]) == 'cancelled' then return 0 end
redis.call('SET', KEYS[1], 'started', 'PX', ARGV[1])
return 1
"""


class CallStates(Protocol):
    """Where calls' states live: :class:`RedisCallStates` beside the outcomes, :class:`MemoryCallStates` in-process."""

    def schedule(self, call_id: str) -> None:
        """Record a call sent with a delay as ``scheduled`` (unless it already has a state)."""

    def cancel(self, call_id: str) -> bool:
        """True if the call is now cancelled and will never be sent; False if it already started."""

    def claim(self, call_id: str) -> bool:
        """Mark the call started; False if it was cancelled (then it must not be sent)."""

    def state(self, call_id: str) -> str | None:
        """``scheduled``, ``started``, ``cancelled``, or None for a call with none."""

    def forget(self, call_id: str) -> None:
        """Drop the call's state (a scheduled call that was not sent after all)."""


class RedisCallStates:
    """Call states in Redis, shared by every client and worker of one results store."""

    def __init__(self, client: Any, ttl_ms: int, namespace: str = "dispatch") -> None:
        self.client = client
        self.ttl_ms = ttl_ms
        self.namespace = namespace
        self._cancel = client.register_script(_CANCEL)
        self._claim = client.register_script(_CLAIM)

    def key(self, call_id: str) -> str:
        return f"{self.namespace}:state:{call_id}"

    def schedule(self, call_id: str) -> None:
        self.client.set(self.key(call_id), SCHEDULED, px=self.ttl_ms, nx=True)

    def cancel(self, call_id: str) -> bool:
        """True if the call is now cancelled and will never be sent; False if it already started."""
        return bool(self._cancel(keys=[self.key(call_id)], args=[self.ttl_ms]))

    def claim(self, call_id: str) -> bool:
        """Mark the call started; False if it was cancelled (then it must not be sent)."""
        return bool(self._claim(keys=[self.key(call_id)], args=[self.ttl_ms]))

    def state(self, call_id: str) -> str | None:
        value = self.client.get(self.key(call_id))
        return value.decode() if isinstance(value, bytes) else value

    def forget(self, call_id: str) -> None:
        self.client.delete(self.key(call_id))


class MemoryCallStates:
    """The same in one process, for the StubBroker (:mod:`dispatch.testing`)."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def schedule(self, call_id: str) -> None:
        with self._lock:
            self._states.setdefault(call_id, SCHEDULED)

    def cancel(self, call_id: str) -> bool:
        with self._lock:
            if self._states.get(call_id, SCHEDULED) != SCHEDULED:
                return False
            self._states[call_id] = CANCELLED
            return True

    def claim(self, call_id: str) -> bool:
        with self._lock:
            if self._states.get(call_id) == CANCELLED:
                return False
            self._states[call_id] = STARTED
            return True

    def state(self, call_id: str) -> str | None:
        return self._states.get(call_id)

    def forget(self, call_id: str) -> None:
        with self._lock:
            self._states.pop(call_id, None)

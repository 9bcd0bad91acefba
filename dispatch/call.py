"""The per-call record: what one message asks the worker to do.

A call travels as a dramatiq message whose positional arguments are the
actor's parameters.  Everything that reads a call back -- the call log,
metrics, dead letters, the test helper, a handle's ``repr`` -- reads it
through :class:`Call` instead of indexing ``message.args``, so the
message's layout is known in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from dramatiq.broker import MessageProxy

#: The name of the built-in actor, as the queue's messages carry it.
ACTOR_NAME = "http_dispatch"


@dataclasses.dataclass(frozen=True)
class Call:
    """One call: its URL, method, parameters and per-call options."""

    url: str
    method: str = "GET"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_message(cls, message: dramatiq.Message[Any] | MessageProxy) -> Call:
        """The call a message carries (arguments the actor's signature leaves out take their defaults)."""
        url, method, params, options = (*message.args, *(None,) * (4 - len(message.args)))[:4]
        return cls(url or "", method or "GET", params or {}, options or {})

    @property
    def host(self) -> str:
        """``host[:port]`` of the URL, credentials left out: the name calls are grouped by."""
        return urlsplit(self.url).netloc.rpartition("@")[2].lower() or "unknown"


def is_call(broker: dramatiq.Broker, message: dramatiq.Message[Any] | MessageProxy) -> bool:
    """Whether ``message`` is a call, i.e. its actor is an HTTP dispatcher (``HttpDispatch.performs_calls``)."""
    actor = broker.actors.get(message.actor_name)
    return getattr(actor, "performs_calls", False)

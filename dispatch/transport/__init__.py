"""One HTTP call: its attempts, each one request (and its redirects) under a deadline, over urllib3.

The modules, one concern each (httpx's ``_transports/`` is the model):

* :mod:`._transport` -- :class:`Transport`: a call delivered in attempts by
  the retry strategies, each attempt's redirects, statuses and capped read.
* :mod:`._wire` -- :class:`WireRequest`, the request as it goes on the wire:
  encoded, headers layered, shaped by a dispatcher's ``prepare`` hook, signed.
* :mod:`._redirects` -- the request a redirect asks for; credentials,
  headers of the destinations file and bodies stay with their origin.
* :mod:`._deadline` -- the deadline on a whole attempt, the watchdog that
  cuts its sockets, its name lookups bounded by it.
* :mod:`._connections` -- one pool manager per process (and per proxy),
  its pools bounded, pools pinned by the destination policy.
* :mod:`._errors` -- urllib3's and the socket's errors as the package's.
* :mod:`._observers` -- the hook around each attempt (metrics, tracing).
* :mod:`._models` -- :class:`Request` in, :class:`Answer` out.

The URL is parsed once (:func:`dispatch.urlsafety.parse_target`, urllib3's
parser): the destination policy checks the very parse the connection is
made from, and a URL another parser would read differently is refused.
``WireRequest`` and ``Answer`` are what :meth:`HttpDispatch.prepare` and
:meth:`HttpDispatch.parse` receive (docs/extending.md).
"""

from ._connections import MIN_POOL_SIZE
from ._deadline import lookup_within
from ._models import Answer, Request
from ._observers import UNOBSERVED, AttemptObserver, Observation
from ._redirects import MAX_REDIRECTS
from ._transport import Transport
from ._wire import USER_AGENT, Shaper, WireRequest

__all__ = [
    "MAX_REDIRECTS",
    "MIN_POOL_SIZE",
    "UNOBSERVED",
    "USER_AGENT",
    "Answer",
    "AttemptObserver",
    "Observation",
    "Request",
    "Shaper",
    "Transport",
    "WireRequest",
    "lookup_within",
]

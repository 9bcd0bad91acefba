"""dispatch: call any language over HTTP, reliably and asynchronously.

Celery's HTTP callback tasks, rebuilt on Dramatiq + RabbitMQ::

    from dispatch import URL
    res = URL("http://example.com/multiply").send(x=10, y=10)
    res.get(timeout=10)   # -> 100

Importing the package connects to nothing and loads only the errors: the
names that need dramatiq (``URL``, ``CallResult``, ``HttpDispatch``, and
Celery's ``HttpDispatchTask`` and ``MutableURL``) are imported on first
access, so ``import dispatch.receiver`` in a web app stays free of the
broker's dependencies.  ``dir(dispatch)`` lists the public names only.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from .errors import (
    BadStatusError,
    BrokerAccessRefused,
    BrokerUnavailable,
    CallCancelled,
    ConfigurationError,
    DestinationRefused,
    DispatchError,
    InvalidResponseError,
    PublishBlocked,
    PublishRefused,
    RemoteExecuteError,
    ResponseTooLargeError,
    ResultsUnavailable,
    ResultTimeout,
    TransportError,
    UnknownStatusError,
)

if TYPE_CHECKING:
    from .actor import HttpDispatch
    from .httptask import HttpDispatchTask
    from .result import CallResult
    from .url import URL, MutableURL

__version__ = version("dispatch")

#: Public names that live in modules importing dramatiq: loaded on first access (PEP 562).
_LAZY = {
    "URL": ".url",
    "MutableURL": ".url",
    "CallResult": ".result",
    "HttpDispatch": ".actor",
    "HttpDispatchTask": ".httptask",
}

__all__ = [
    "URL",
    "BadStatusError",
    "BrokerAccessRefused",
    "BrokerUnavailable",
    "CallCancelled",
    "CallResult",
    "ConfigurationError",
    "DestinationRefused",
    "DispatchError",
    "HttpDispatch",
    "HttpDispatchTask",
    "InvalidResponseError",
    "MutableURL",
    "PublishBlocked",
    "PublishRefused",
    "RemoteExecuteError",
    "ResponseTooLargeError",
    "ResultTimeout",
    "ResultsUnavailable",
    "TransportError",
    "UnknownStatusError",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])

"""dispatch: call any language over HTTP, reliably and asynchronously.

Celery's HTTP callback tasks, rebuilt on Dramatiq + RabbitMQ::

    from dispatch import URL
    res = URL("http://example.com/multiply").send(x=10, y=10)
    res.get(timeout=10)   # -> 100
"""

from importlib.metadata import version

from .errors import (
    BadStatusError,
    ConfigurationError,
    DestinationRefused,
    DispatchError,
    InvalidResponseError,
    RemoteExecuteError,
    ResponseTooLargeError,
    ResultTimeout,
    TransportError,
    UnknownStatusError,
)
from .result import CallResult
from .url import URL

__version__ = version("dispatch")

__all__ = [
    "URL",
    "BadStatusError",
    "CallResult",
    "ConfigurationError",
    "DestinationRefused",
    "DispatchError",
    "InvalidResponseError",
    "RemoteExecuteError",
    "ResponseTooLargeError",
    "ResultTimeout",
    "TransportError",
    "UnknownStatusError",
]

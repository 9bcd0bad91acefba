"""The errors a call can end with.

The worker raises these; the Results middleware stores only the class
*name* and the message, so :func:`error_from_result` rebuilds the same
class in the caller's process.  That is why every error here must be
constructible from its message alone.

Hierarchy (Celery's ``celery.task.http`` names, kept for familiarity)::

    DispatchError
     +-- InvalidResponseError          the answer broke the protocol
     |    +-- UnknownStatusError       "status" was neither success nor failure
     |    +-- BadStatusError           a non-2xx HTTP status (not a retried one)
     |    +-- ResponseTooLargeError    the body exceeded the configured cap
     +-- RemoteExecuteError            the endpoint answered "failure"
     +-- TransportError                the request never got an answer
     +-- DestinationRefused            the destination policy forbids the address
     +-- CallCancelled                 the call was cancelled before it started
     +-- ResultTimeout                 res.get() gave up waiting (also a TimeoutError)
     +-- ResultsUnavailable            the results store (Redis) could not be read or written
     +-- ConfigurationError            an environment variable could not be parsed
     +-- BrokerUnavailable             RabbitMQ unreachable within DISPATCH_SEND_TIMEOUT; not sent
     |    +-- BrokerAccessRefused      RabbitMQ refused the login or the vhost; not sent, not retried
     |    +-- PublishBlocked           RabbitMQ blocks publishers (memory or disk alarm); not confirmed
     +-- PublishRefused                RabbitMQ refused the message; not sent
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DispatchError(Exception):
    """Base class of every error this package raises for a call."""


class InvalidResponseError(DispatchError):
    """The endpoint answered, but not in the callback protocol."""


class UnknownStatusError(InvalidResponseError):
    """The answer's ``status`` was neither ``success`` nor ``failure``."""


class BadStatusError(InvalidResponseError):
    """The endpoint answered with a non-2xx status that is not retried."""


class ResponseTooLargeError(InvalidResponseError):
    """The body was larger than ``DISPATCH_MAX_RESPONSE_BYTES``; it was not read."""


class RemoteExecuteError(DispatchError):
    """The endpoint answered ``{"status": "failure", "reason": ...}``.

    ``str(exc)`` is the reason.  It is an answer, so it is never retried.
    """


class TransportError(DispatchError):
    """Every attempt failed before an answer arrived (refused, reset, timeout, 429/502/503/504)."""


class DestinationRefused(DispatchError):
    """The destination policy (``DISPATCH_DENY_PRIVATE``) refused the call; no request was sent."""


class CallCancelled(DispatchError):
    """The call was cancelled (``res.cancel()``) before a worker started it; it was never sent."""


class ResultTimeout(DispatchError, TimeoutError):
    """``res.get(timeout=...)`` ran out of time before the outcome was stored."""


class ResultsUnavailable(DispatchError):
    """The results store (``DISPATCH_RESULTS_URL``'s Redis) failed a handle's read or write.

    Raised by ``get()``, ``aget()``, ``state()``, ``cancel()``, ``acancel()`` and ``attempts()`` in place of
    redis-py's errors; the message names the Redis that was asked (never its password) and what to check.
    """


class ConfigurationError(DispatchError, ValueError):
    """An environment variable holds a value that cannot be parsed."""


class BrokerUnavailable(DispatchError):
    """RabbitMQ could not be reached within ``DISPATCH_SEND_TIMEOUT``; the call was not sent.

    From a bulk publish, ``message_ids`` names the messages RabbitMQ did not
    confirm (the others were sent); empty when the publisher did not know them.
    """

    def __init__(self, message: str, message_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message_ids = list(message_ids)


class BrokerAccessRefused(BrokerUnavailable):
    """RabbitMQ refused the login (``ACCESS_REFUSED``: wrong user or password) or the vhost; not retried, not sent."""


class PublishBlocked(BrokerUnavailable):
    """RabbitMQ blocks publishers (a memory or disk alarm) and confirmed nothing within the publish's timeout.

    What was handed over unconfirmed stays in RabbitMQ's hands: it may still be
    queued when the alarm clears.  ``message_ids`` names those messages (empty
    when the publisher did not know them).
    """


class PublishRefused(DispatchError):
    """RabbitMQ refused the message (negative publisher confirm); the call was not sent.

    From a bulk send, ``sent`` holds the handles RabbitMQ confirmed and
    ``refused`` the messages it did not, so a caller can retry just those.
    """

    def __init__(self, message: str, sent: Sequence[Any] = (), refused: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.sent = list(sent)
        self.refused = list(refused)


#: Errors a worker may store as a call's outcome, by class name.
_STORABLE: dict[str, type[DispatchError]] = {
    cls.__name__: cls
    for cls in (
        DispatchError,
        InvalidResponseError,
        UnknownStatusError,
        BadStatusError,
        ResponseTooLargeError,
        RemoteExecuteError,
        TransportError,
        DestinationRefused,
        CallCancelled,
    )
}


def error_from_result(type_name: str, message: str) -> DispatchError:
    """The error a worker stored as ``type_name``/``message``.

    One that is not ours (an actor that raised something else) comes back
    as a plain DispatchError naming the original class, so a caller's
    ``except DispatchError`` always holds.
    """
    cls = _STORABLE.get(type_name)
    return cls(message) if cls else DispatchError(f"{type_name}: {message}")

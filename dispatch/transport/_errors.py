"""urllib3's, the socket's and ssl's errors, as the package's: the one place they are caught and named.

Every failure to get an answer -- refused, reset, unreachable, a TLS error,
a name that does not resolve, a deadline that passed -- is a transport
failure (:class:`~dispatch.retries.AttemptFailed`), which the retry
strategies retry.  Nothing of urllib3 leaves the transport.  Each failure
also says whether the request may have been written (``reached_wire``):
not when no connection was ever made (refused, unreachable, a connect
timeout, a name that does not resolve), which the call record keeps.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

import urllib3

from ..redaction import redact
from ..retries import AttemptFailed
from ._deadline import Deadline

# Failures before a connection exists: nothing of the request was written.
_BEFORE_WIRE: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ConnectTimeoutError,  # NewConnectionError (refused, unreachable) and NameResolutionError too
    socket.gaierror,  # the policy's own name lookup
)


@contextlib.contextmanager
def mapped_errors(deadline: Deadline, url: Callable[[], str]) -> Iterator[None]:
    """Raise AttemptFailed for a urllib3 error or an OSError in the block.

    ``url`` gives the URL being requested when it failed (after any redirect);
    the error's cause goes into the message, its traceback does not, and the
    message is redacted (a proxy's URL, say, may carry its password).
    """
    try:
        yield
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        wire = _reached_wire(exc)
        if deadline.expired:  # the watchdog cut the connection: whatever the read then saw, it timed out
            raise AttemptFailed(deadline.message, reached_wire=wire) from None
        refused = isinstance(exc, urllib3.exceptions.NewConnectionError)  # refused or unreachable: not a timeout,
        if isinstance(exc, urllib3.exceptions.TimeoutError) and not refused:  # though urllib3 makes it a subclass
            raise AttemptFailed(f"{deadline.message} ({type(exc).__name__})", reached_wire=wire) from None
        if isinstance(exc, urllib3.exceptions.HTTPError):  # refused, reset, TLS, a proxy's error
            raise AttemptFailed(redact(f"{type(exc).__name__}: {exc}"), reached_wire=wire) from None
        raise AttemptFailed(redact(f"cannot resolve {url()}: {exc}"), reached_wire=wire) from None  # looked up by us


def _reached_wire(error: BaseException) -> bool:
    """Whether the request may have been written: ``error`` (or what it was raised from) is no failure to connect."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return True
        if isinstance(current, _BEFORE_WIRE):
            return False
        current = current.__cause__ or current.__context__
    return True

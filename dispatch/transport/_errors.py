"""urllib3's, the socket's and ssl's errors, as the package's: the one place they are caught and named.

Every failure to get an answer -- refused, reset, unreachable, a TLS error,
a name that does not resolve, a deadline that passed -- is a transport
failure (:class:`~dispatch.retries.AttemptFailed`), which the retry
strategies retry.  Nothing of urllib3 leaves the transport.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import urllib3

from ..redaction import redact
from ..retries import AttemptFailed
from ._deadline import Deadline


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
        if deadline.expired:  # the watchdog cut the connection: whatever the read then saw, it timed out
            raise AttemptFailed(deadline.message) from None
        refused = isinstance(exc, urllib3.exceptions.NewConnectionError)  # refused or unreachable: not a timeout,
        if isinstance(exc, urllib3.exceptions.TimeoutError) and not refused:  # though urllib3 makes it a subclass
            raise AttemptFailed(f"{deadline.message} ({type(exc).__name__})") from None
        if isinstance(exc, urllib3.exceptions.HTTPError):  # refused, reset, TLS, a proxy's error
            raise AttemptFailed(redact(f"{type(exc).__name__}: {exc}")) from None
        raise AttemptFailed(redact(f"cannot resolve {url()}: {exc}")) from None  # a name looked up by us

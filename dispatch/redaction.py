"""Secrets out of every message: one function redacts them, everything shown passes through it.

A secret can reach text in two ways: inside a URL (``http://user:pw@host``,
``amqp://guest:pw@rabbit``, ``redis://:pw@cache``) or as a known value (a
signing secret, a gateway token, a destination's header).  :func:`redact`
handles both: the password part of any URL's userinfo becomes ``***`` (the
whole userinfo when it is a name alone, which may be a token), and
every value registered with :func:`register_secret` -- settings marked
secret, destinations' header values, passwords found in configured URLs --
is replaced wherever it appears.

Errors, stored outcomes, attempt details, the gateway's answers, the CLI's
output and metric labels are built from redacted text; :class:`RedactingFilter`
is the safety net on the package's loggers (and dramatiq's), for a secret
that arrives inside a third party's exception message.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

#: What a secret is replaced with.
MASK = "***"

#: Shorter values are not registered: replacing every "1" or "ab" in a message would make it unreadable,
#: and a secret that short is no secret.
MIN_SECRET_LENGTH = 6

# scheme://user:password@host  (the password up to the last '@' before the host, so an unescaped '@' in it
# is masked too; no spaces, no '/'), or scheme://name@host (a name alone may be a token: ghp_...@api.github.com)
_USERINFO = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s:/@]*:[^\s/]*|[^\s:/?#@]+)"
    r"(?=@[^\s/@?#'\"]*(?:[/?#\s'\"]|$))"
)


def _mask_userinfo(match: re.Match[str]) -> str:
    """``user:***`` for a user and password (``:***`` for a password alone), ``***`` for a name alone."""
    user, colon, _ = match.group("userinfo").partition(":")
    return match.group("head") + (f"{user}:{MASK}" if colon else MASK)


_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first: a secret that contains another is masked whole


def register_secret(*values: str | None) -> None:
    """Redact these values from now on, in this process (empty and very short values are ignored)."""
    global _secrets
    fresh = {value for value in values if value and len(value) >= MIN_SECRET_LENGTH}
    if fresh - set(_secrets):
        with _lock:
            _secrets = tuple(sorted(fresh | set(_secrets), key=len, reverse=True))


def register_url_password(url: str) -> None:
    """Redact the password of ``url`` (each of several, ``;``- or ``,``-separated) wherever it appears."""
    for part in re.split(r"[;,]", url):
        try:
            password = urlsplit(part.strip()).password
        except ValueError:
            continue
        register_secret(password)


def redact(text: str) -> str:
    """``text`` with URL passwords (a URL's user name without one) and every registered secret replaced by ``***``."""
    if "://" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """A URL fit to show: its password (and any registered secret in it) masked."""
    return redact(url)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and arguments through :func:`redact`; drops nothing.

    Text arguments are redacted in place, so a formatter that reads them one by
    one (uvicorn's access log) still finds them; only when another argument
    (an exception, an object) brings a secret are message and arguments merged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` with a :class:`RedactingFilter`: how every module of the package gets its logger."""
    install_log_redaction(name)
    return logging.getLogger(name)


#: Third-party loggers that may carry a call's URL or a connection URL inside an exception's message (a broker's,
#: named after its class, is filtered by the broker itself).
REDACTED_LOGGERS = (
    "dramatiq",
    "dramatiq.worker.WorkerThread",
    "dramatiq.worker.ConsumerThread",
    "dramatiq.middleware.retries.Retries",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)


def install_log_redaction(*names: str) -> None:
    """Put a :class:`RedactingFilter` on each named logger (once); by default on ``REDACTED_LOGGERS`` and more.

    A filter on a logger sees only records logged through that very logger
    (not its children's), so each logger that may carry a secret is named.
    Called without names (a worker process at boot once dramatiq has set up
    its logging, the gateway once uvicorn has), it also filters every handler
    of the root logger and of those loggers: whatever logger a record comes
    from, it is redacted on its way out.
    """
    loggers = [logging.getLogger(name) for name in names or REDACTED_LOGGERS]
    targets: list[logging.Filterer] = list(loggers)
    if not names:
        targets += [handler for logger in (logging.getLogger(), *loggers) for handler in logger.handlers]
    for target in targets:
        if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
            target.addFilter(RedactingFilter())

"""URL safety: the one parse of a call's URL that is both checked and connected to.

A URL is read here the way the worker connects to it (urllib3's parser,
:func:`parse_target`) and refused when another reading is possible: a URL
that ``urllib.parse`` would split into another scheme, host or port is the
classic way past a check made with one parser of a connection made with the
other (server-side request forgery).  The caller's checks
(:mod:`dispatch.validation`), the destination policy (:mod:`dispatch.policy`),
flow control's host key and the transport's redirects all use this parse.
Its errors name the URL with its password masked.
"""

from __future__ import annotations

import functools
import unicodedata
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from .redaction import redact_url

_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host, else raise ValueError.

    Whitespace and control characters are refused rather than stripped:
    ``urllib.parse`` silently drops CR, LF and tab, so the URL requested
    would not be the URL given (and CR/LF is how headers get injected).

    The URL is read the way the worker will connect to it (:func:`parse_url`,
    urllib3's parser), and refused when ``urllib.parse`` would read another
    scheme, host or port from it: ``http://127.0.0.1:9000\\@example.com/``
    is ``example.com`` to one and ``127.0.0.1:9000`` to the other, the
    classic way past a check made with one parser of a connection made with
    the other.  Backslashes and percent-escapes in the host are refused for
    the same reason, and a non-ASCII host must be a valid IDNA name.
    """
    parse_target(url)
    return url


def port_of(target: Url) -> int | None:
    """The port a parsed http(s) URL connects to: its own, or its scheme's default."""
    return target.port or _DEFAULT_PORTS.get(target.scheme or "")


def parse_target(url: str) -> Url:
    """``url`` as urllib3 reads it -- the one parse both checked and connected to; ValueError if unsafe.

    See :func:`check_url` for what is refused.
    """
    if not isinstance(url, str):
        raise ValueError(f"URL must be a string, not {type(url).__name__}")
    if not (url.isascii() and url.isprintable()) or " " in url or "\\" in url:  # else no character can be unsafe
        for position, char in enumerate(url):
            if char.isspace() or unicodedata.category(char) in ("Cc", "Cf") or char == "\\":
                raise ValueError(f"URL {redact_url(url)!r} contains {char!r} at position {position}; percent-encode it")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL {redact_url(url)!r} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL {redact_url(url)!r} is not an absolute http:// or https:// URL")
    if "%" in parts.hostname:
        raise ValueError(f"URL {redact_url(url)!r} has a percent-escape in its host; write the host plainly")
    try:
        target = parse_url(url)
        # urlsplit's host, read on its own by urllib3: equal only if both split the authority alike.
        expected = _host_alone(parts.scheme, parts.hostname)
    except (LocationParseError, UnicodeError) as exc:
        raise ValueError(f"URL {redact_url(url)!r} has a host that is not a valid (IDNA) host name: {exc}") from None
    if (target.scheme, target.host, target.port) != (parts.scheme.lower(), expected, port):
        raise ValueError(
            f"URL {redact_url(url)!r} is ambiguous: it reads as host {target.host!r} port {target.port} "
            f"to the HTTP client but {parts.hostname!r} port {port} to urllib.parse; "
            "percent-encode its special characters"
        )
    return target


@functools.lru_cache(maxsize=4096)
def _host_alone(scheme: str, hostname: str) -> str | None:
    """urllib3's reading of ``hostname`` alone in a URL (cached: a worker calls the same hosts again and again)."""
    host = hostname if ":" not in hostname else f"[{hostname}]"
    return parse_url(f"{scheme}://{host}/").host

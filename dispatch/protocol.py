"""The callback protocol: what a call may carry, and what its answer means.

Both ends of the wire live here so they can be read side by side:

* :func:`check_call` validates a call *in the caller*, before anything is
  enqueued, so a typo fails at ``send()`` and not minutes later in a worker.
* :func:`parse_answer` turns an endpoint's 2xx body into the call's result
  or the matching error.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from .errors import InvalidResponseError, RemoteExecuteError, UnknownStatusError

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

#: How a call's params travel in a method with a body (GET always uses the query).
BODY_FORMATS = ("form", "json")

#: Headers the worker owns: hop-by-hop and framing headers, the call's identity and its signature.
#: A call or a destinations file setting one of these is refused (``webhook-*`` too).
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "idempotency-key",
    }
)

#: An HTTP header name: a token (RFC 9110 5.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: The longest value one extra header may have; servers commonly refuse header blocks over 8 KiB.
MAX_HEADER_VALUE = 4096

#: Types a parameter value may have: they encode the same way in a query
#: string, a form body and the JSON message on the queue.
_SCALARS = (str, int, float, bool)

Params = dict[str, Any]


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


_DEFAULT_PORTS = {"http": 80, "https": 443}


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
                raise ValueError(f"URL {url!r} contains {char!r} at position {position}; percent-encode it")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL {url!r} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL {url!r} is not an absolute http:// or https:// URL")
    if "%" in parts.hostname:
        raise ValueError(f"URL {url!r} has a percent-escape in its host; write the host plainly")
    try:
        target = parse_url(url)
        # urlsplit's host, read on its own by urllib3: equal only if both split the authority alike.
        expected = _host_alone(parts.scheme, parts.hostname)
    except (LocationParseError, UnicodeError) as exc:
        raise ValueError(f"URL {url!r} has a host that is not a valid (IDNA) host name: {exc}") from None
    if (target.scheme, target.host, target.port) != (parts.scheme.lower(), expected, port):
        raise ValueError(
            f"URL {url!r} is ambiguous: it reads as host {target.host!r} port {target.port} to the HTTP client "
            f"but {parts.hostname!r} port {port} to urllib.parse; percent-encode its special characters"
        )
    return target


@functools.lru_cache(maxsize=4096)
def _host_alone(scheme: str, hostname: str) -> str | None:
    """urllib3's reading of ``hostname`` alone in a URL (cached: a worker calls the same hosts again and again)."""
    host = hostname if ":" not in hostname else f"[{hostname}]"
    return parse_url(f"{scheme}://{host}/").host


def check_method(method: str) -> str:
    """Return the upper-cased method if it is one the protocol defines, else raise ValueError."""
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, not {type(method).__name__}")
    normalized = method.upper()
    if normalized not in METHODS:
        raise ValueError(f"method {method!r} is not supported; use one of {', '.join(sorted(METHODS))}")
    return normalized


def check_params(params: Mapping[str, Any] | None, *, json_body: bool = False) -> Params:
    """Return ``params`` as a plain dict if every value can be sent, else raise ValueError.

    In a query or a form, a value is a string, number or boolean, None (the
    parameter is left out, as requests does), or a list of those (the key is
    repeated).  In a JSON body (``json_body``) any JSON value goes, nested
    objects and arrays included, but not NaN or infinities.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping of names to values, not {type(params).__name__}")
    if json_body:
        return _check_json(params)
    checked: Params = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise ValueError(f"parameter name {name!r} is not a string")
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is not None and not isinstance(item, _SCALARS):
                raise ValueError(
                    f"parameter {name!r} has a value of type {type(item).__name__} that cannot be "
                    "sent; use a string, number, boolean, None or a list of those"
                )
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"parameter {name!r} is {item!r}, which has no JSON form")
        checked[name] = list(value) if isinstance(value, tuple) else value
    return checked


def _check_json(params: Mapping[str, Any]) -> Params:
    for name in params:
        if not isinstance(name, str):
            raise ValueError(f"parameter name {name!r} is not a string")
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"params cannot be sent as a JSON body: {exc}") from None
    return dict(params)


def check_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Return extra request ``headers`` as a dict if each can be sent, else raise ValueError.

    A name is an HTTP token and not one the worker owns
    (:data:`RESERVED_HEADERS`, ``webhook-*``); a value is a string without
    CR, LF or NUL -- the characters that would start a header of their own.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ValueError(f"headers must be a mapping of header names to values, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("webhook-"):
            raise ValueError(f"header {name!r} is set by the worker and cannot be given")
        if not isinstance(value, str):
            raise ValueError(f"header {name!r} must have a string value, not {type(value).__name__}")
        if any(char in value for char in "\r\n\0"):
            raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
        if len(value) > MAX_HEADER_VALUE:
            raise ValueError(f"header {name!r} is {len(value)} characters long, over {MAX_HEADER_VALUE}")
        checked[name] = value
    return checked


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Ceilings of the per-call options.  A value past one is refused with
#: ValueError (the gateway's 422) rather than accepted and left to overflow
#: in a worker: one attempt lasts at most an hour; a call gets at most 100
#: quick attempts; its retry schedule has at most 50 delays of at most 7
#: days each, spanning at most 30 days in all.
MAX_TIMEOUT = 3600.0
MAX_ATTEMPTS = 100
MAX_SCHEDULE_ENTRIES = 50
MAX_SCHEDULE_DELAY = 7 * 24 * 3600.0
MAX_SCHEDULE_SPAN = 30 * 24 * 3600.0


def _valid_schedule(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) <= MAX_SCHEDULE_ENTRIES
        and all(_is_number(d) and 0 <= d <= MAX_SCHEDULE_DELAY for d in value)
        and sum(value) <= MAX_SCHEDULE_SPAN
    )


#: Per-call overrides of the worker's settings: (check, what a valid value is).
#: Every check is bounded (see the ceilings above) and never raises.
OPTIONS = {
    "timeout": (
        lambda v: _is_number(v) and 0 < v <= MAX_TIMEOUT,
        f"a positive number of seconds, at most {MAX_TIMEOUT:g}",
    ),
    "max_attempts": (
        lambda v: _is_number(v) and 1 <= v <= MAX_ATTEMPTS and v == int(v),
        f"a positive integer, at most {MAX_ATTEMPTS}",
    ),
    "retry_schedule": (
        _valid_schedule,
        f"a list of at most {MAX_SCHEDULE_ENTRIES} delays in seconds, each at most {MAX_SCHEDULE_DELAY:g} "
        f"(7 days), {MAX_SCHEDULE_SPAN:g} (30 days) in all",
    ),
    "body": (lambda v: v in BODY_FORMATS, " or ".join(repr(f) for f in BODY_FORMATS)),
    "headers": (lambda v: isinstance(v, Mapping), "a mapping of header names to values"),
}


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return per-call ``options`` as a dict if each is known and valid, else raise ValueError."""
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"options must be a mapping of option names to values, not {type(options).__name__}")
    checked = dict(options or {})
    for name, value in checked.items():
        if name not in OPTIONS:
            raise ValueError(f"unknown call option {name!r}; known: {', '.join(sorted(OPTIONS))}")
        is_valid, expected = OPTIONS[name]
        if not is_valid(value):
            raise ValueError(f"call option {name}={value!r} is invalid: it must be {expected}")
        if isinstance(value, tuple):
            checked[name] = list(value)
    if "headers" in checked:
        checked["headers"] = check_headers(checked["headers"])
    return checked


def check_call(
    url: str, method: str, params: Mapping[str, Any] | None, options: Mapping[str, Any] | None
) -> tuple[str, str, Params, dict[str, Any]]:
    """Validate one call as a whole; see the checks above."""
    method, options = check_method(method), check_options(options)
    return check_url(url), method, check_params(params, json_body=sends_json(method, options)), options


def shape_options(headers: Mapping[str, Any] | None, body: str) -> dict[str, Any]:
    """A call's shape as message options, checked later with the others: only what is not the default
    (no extra headers, a form body), so a plain call's message carries nothing for it."""
    return {**({"headers": headers} if headers else {}), **({"body": body} if body != BODY_FORMATS[0] else {})}


def sends_json(method: str, options: Mapping[str, Any]) -> bool:
    """Whether a call's params travel as a JSON body: asked for, and the method has a body (GET never)."""
    return method != "GET" and options.get("body") == "json"


def parse_answer(body: bytes) -> Any:
    """The ``retval`` of a 2xx answer, or the error the answer means."""
    if not body.strip():
        raise InvalidResponseError("empty response body")
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to decode
        raise InvalidResponseError(f"response is not JSON: {_preview(body)}") from None
    if not isinstance(answer, dict):
        raise InvalidResponseError(f"response is not a JSON object: {_preview(body)}")

    status = answer.get("status")
    if status == "success":
        return answer.get("retval")
    if status == "failure":
        raise RemoteExecuteError(_text(answer.get("reason", "")))
    raise UnknownStatusError(f"unknown status {_text(status, repr)}")


def _text(value: Any, render: Any = str) -> str:
    """``render(value)``, or a placeholder when the value is nested too deeply to render."""
    try:
        return render(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


def _preview(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(body) > limit else ""))

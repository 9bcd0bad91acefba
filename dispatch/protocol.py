"""The callback protocol: what a call may carry, and what its answer means.

Both ends of the wire live here so they can be read side by side:

* :func:`check_call` validates a call *in the caller*, before anything is
  enqueued, so a typo fails at ``send()`` and not minutes later in a worker.
* :func:`parse_answer` turns an endpoint's 2xx body into the call's result
  or the matching error.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidResponseError, RemoteExecuteError, UnknownStatusError

METHODS = frozenset({"GET", "POST"})

#: Types a parameter value may have: they encode the same way in a query
#: string, a form body and the JSON message on the queue.
_SCALARS = (str, int, float, bool)

Params = dict[str, Any]


def check_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host, else raise ValueError.

    Whitespace and control characters are refused rather than stripped:
    ``urllib.parse`` silently drops CR, LF and tab, so the URL requested
    would not be the URL given (and CR/LF is how headers get injected).
    """
    if not isinstance(url, str):
        raise ValueError(f"URL must be a string, not {type(url).__name__}")
    for position, char in enumerate(url):
        if char.isspace() or unicodedata.category(char) == "Cc":
            raise ValueError(f"URL {url!r} contains {char!r} at position {position}; percent-encode it")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"URL {url!r} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL {url!r} is not an absolute http:// or https:// URL")
    return url


def check_method(method: str) -> str:
    """Return the upper-cased method if it is one the protocol defines, else raise ValueError."""
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, not {type(method).__name__}")
    normalized = method.upper()
    if normalized not in METHODS:
        raise ValueError(f"method {method!r} is not supported; use one of {', '.join(sorted(METHODS))}")
    return normalized


def check_params(params: Mapping[str, Any] | None) -> Params:
    """Return ``params`` as a plain dict if every value can be sent, else raise ValueError.

    A value is a string, number or boolean, None (the parameter is left
    out, as requests does), or a list of those (the key is repeated).
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping of names to values, not {type(params).__name__}")
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Per-call overrides of the worker's settings: (check, what a valid value is).
OPTIONS = {
    "timeout": (lambda v: _is_number(v) and 0 < v < math.inf, "a positive number of seconds"),
    "max_attempts": (lambda v: _is_number(v) and v >= 1 and v == int(v), "a positive integer"),
    "retry_schedule": (
        lambda v: isinstance(v, (list, tuple)) and all(_is_number(d) and 0 <= d < math.inf for d in v),
        "a list of delays in seconds",
    ),
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
    return checked


def check_call(
    url: str, method: str, params: Mapping[str, Any] | None, options: Mapping[str, Any] | None
) -> tuple[str, str, Params, dict[str, Any]]:
    """Validate one call as a whole; see the checks above."""
    return check_url(url), check_method(method), check_params(params), check_options(options)


def parse_answer(body: bytes) -> Any:
    """The ``retval`` of a 2xx answer, or the error the answer means."""
    if not body.strip():
        raise InvalidResponseError("empty response body")
    try:
        answer = json.loads(body)
    except ValueError:
        raise InvalidResponseError(f"response is not JSON: {_preview(body)}") from None
    if not isinstance(answer, dict):
        raise InvalidResponseError(f"response is not a JSON object: {_preview(body)}")

    status = answer.get("status")
    if status == "success":
        return answer.get("retval")
    if status == "failure":
        raise RemoteExecuteError(str(answer.get("reason", "")))
    raise UnknownStatusError(f"unknown status {status!r}")


def _preview(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(body) > limit else ""))

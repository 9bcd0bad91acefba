"""A call's checks, made in the caller before anything is enqueued: method, params, headers, options.

A typo fails at ``send()`` (or as the gateway's 422), not minutes later in a
worker.  The delay of a call for later is checked here too, for ``URL.send_in``/``send_at`` (and their
``asend`` twins) and the outbox's writers alike.  The per-call options' schema (:data:`OPTIONS`) and its ceilings live
here too: a worker reads a message's options through the same checks
(:mod:`dispatch.settings`), so a value past a ceiling cannot reach it either.
The URL's own check is :mod:`dispatch.urlsafety`'s.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .urlsafety import check_url

#: The HTTP methods a call may use (``dispatch.receiver.METHODS``, what a receiver answers, lists them too).
CALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

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


def check_method(method: str) -> str:
    """Return the upper-cased method if a call may use it, else raise ValueError."""
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, not {type(method).__name__}")
    normalized = method.upper()
    if normalized not in CALL_METHODS:
        raise ValueError(f"method {method!r} is not supported; use one of {', '.join(sorted(CALL_METHODS))}")
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


#: The longest delay ``send_in``/``send_at`` accept, in seconds (30 days).
MAX_DELAY = 30 * 24 * 3600


def check_delay(seconds: float) -> float:
    """Return ``seconds`` if a call may wait that long before it is performed (0 to :data:`MAX_DELAY`)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_DELAY:
        raise ValueError(f"send_in() takes 0 to {MAX_DELAY} seconds, not {seconds!r}")
    return seconds


def seconds_until(when: datetime) -> float:
    """Seconds from now to ``when``, an aware datetime (0 for one in the past), as ``send_at`` reads it."""
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"send_at() takes a timezone-aware datetime, not {when!r}")
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())

"""A request's arguments: from the query string (GET), or from the form or JSON body (the other methods).

The arguments come from exactly what a signature covers (:func:`dispatch.signing.signed_payload`):
the query string for GET, the body otherwise -- so on POST, PUT, PATCH and DELETE the URL's own
query is not read.  A form value arrives as a string (a repeated key as a list of strings); a JSON
body is one object whose members arrive with their JSON types.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from ._exchange import FORM, JSON, Incoming, Reply


def read_arguments(incoming: Incoming) -> dict[str, Any] | Reply:
    """The arguments ``incoming`` carries, or the Reply refusing a body that cannot carry any."""
    if incoming.method.upper() == "GET":
        return _form(incoming.query)
    if not incoming.body.strip():
        return {}  # whatever its type (wsgiref calls a missing one text/plain)
    media_type = incoming.content_type.split(";")[0].strip().lower()
    if media_type in ("", FORM):
        return _form(incoming.body)
    if media_type != JSON:
        return Reply.failure(415, f"the body must be {FORM} or {JSON}, not {incoming.content_type}")
    try:
        parsed = json.loads(incoming.body, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are no text
        return Reply.failure(400, f"the body is not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        return Reply.failure(400, f"a JSON body must be an object of arguments, not {_json_kind(parsed)}")
    return parsed


def check_arguments(func: Callable[..., Any], args: dict[str, Any]) -> Reply | None:
    """A ``failure`` Reply when ``func`` cannot be called with ``args`` (missing, unexpected), else None."""
    try:
        inspect.signature(func).bind(**args)
    except TypeError as exc:
        return Reply.failure(200, f"bad arguments for {getattr(func, '__name__', 'the function')}(): {exc}")
    except ValueError:
        pass  # no introspectable signature (some builtins): let the call itself decide
    return None


def _form(encoded: bytes) -> dict[str, Any]:
    """Form-encoded arguments: one value -> a string, a repeated key -> a list of strings."""
    parsed = parse_qs(encoded.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
    return {name: values[0] if len(values) == 1 else values for name, values in parsed.items()}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), "null")

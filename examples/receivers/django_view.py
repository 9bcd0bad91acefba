"""Django views written by hand, answering the callback protocol (as in Celery's docs).

Route them in urls.py:  path("multiply", views.multiply), path("divide", views.divide), ...
(django_app.py serves them at /view/multiply, /view/divide and /view/echo.)

They take every shape of call a worker sends: GET with the arguments in the query
string; POST, PUT, PATCH and DELETE with them in the body, form-encoded or JSON (JSON
values keep their types).  Django parses a form body for POST only (request.POST), so
the body is read here for every method.  They do not check signatures:
Receiver(...).django_view() does (django_app.py, docs/protocol.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
INTEGER = re.compile(r"\s*[+-]?\d+\s*")


class Refused(Exception):
    """A request the protocol does not allow: answered with this HTTP status and a failure body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def arguments(request: HttpRequest) -> dict[str, Any]:
    """GET: the query string.  Other methods: the body only, as that is what a signature covers."""
    if request.method == "GET":
        source = request.GET
    elif request.content_type == JSON:
        try:
            args = json.loads(request.body)
        except ValueError as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from None
        if not isinstance(args, dict):
            raise Refused(400, "the JSON body must be an object of arguments")
        return args
    elif request.content_type in ("", FORM):
        source = QueryDict(request.body, encoding=request.encoding)
    else:
        raise Refused(415, f"the body must be {FORM} or {JSON}, not {request.content_type}")
    return {name: values[0] if len(values) == 1 else values for name, values in source.lists()}


def integer(args: dict[str, Any], name: str) -> int:
    """An integer argument: a JSON integer, or a string of digits (a form or query value)."""
    if name not in args:
        raise ValueError(f"missing argument: {name}")
    value = args[name]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and INTEGER.fullmatch(value):
        return int(value)
    raise ValueError(f"{name} must be an integer, not {json.dumps(value)}")


def callback(task: Callable[[dict[str, Any]], Any]) -> Callable[[HttpRequest], JsonResponse]:
    """A view calling ``task(arguments)``: its return value or its exception becomes the answer."""

    @csrf_exempt  # callers are servers, not browsers
    @wraps(task)
    def view(request: HttpRequest) -> JsonResponse:
        try:
            args = arguments(request)
        except Refused as exc:
            return JsonResponse({"status": "failure", "reason": str(exc)}, status=exc.status)
        try:
            return JsonResponse({"status": "success", "retval": task(args)})
        except Exception as exc:
            return JsonResponse({"status": "failure", "reason": str(exc)})

    return view


@callback
def multiply(args: dict[str, Any]) -> int:
    return integer(args, "x") * integer(args, "y")


@callback
def divide(args: dict[str, Any]) -> float:
    return integer(args, "x") / integer(args, "y")  # y=0: ZeroDivisionError("division by zero")


@callback
def echo(args: dict[str, Any]) -> dict[str, Any]:
    return args

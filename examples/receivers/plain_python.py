"""A receiver in plain Python, standard library only.

    python examples/receivers/plain_python.py [PORT [HOST]]    (default 8000 127.0.0.1)

It takes every shape of call a worker sends: GET with the arguments in the query
string; POST, PUT, PATCH and DELETE with them in the body, form-encoded or JSON (JSON
values keep their types; form and query values are strings).

    /multiply?x=10&y=10   ->  {"status": "success", "retval": 100}
    /divide?x=1&y=0       ->  {"status": "failure", "reason": "division by zero"}
    /multiply?x=10        ->  {"status": "failure", "reason": "missing argument: y"}
    /multiply?x=ten&y=10  ->  {"status": "failure", "reason": "x must be an integer, not \"ten\""}
    /echo?a=1&a=2&b=3     ->  {"status": "success", "retval": {"a": ["1", "2"], "b": "3"}}

It does not check signatures; dispatch.receiver does (docs/protocol.md).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
INTEGER = re.compile(r"\s*[+-]?\d+\s*")


class Refused(Exception):
    """A request the protocol does not allow: answered with this HTTP status and a failure body."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


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


def multiply(args: dict[str, Any]) -> int:
    return integer(args, "x") * integer(args, "y")


def divide(args: dict[str, Any]) -> float:
    return integer(args, "x") / integer(args, "y")  # y=0: ZeroDivisionError("division by zero")


def echo(args: dict[str, Any]) -> dict[str, Any]:
    return args


def health(args: dict[str, Any]) -> str:
    return "ok"


TASKS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "/multiply": multiply,
    "/divide": divide,
    "/echo": echo,
    "/health": health,
}


def form(encoded: str) -> dict[str, Any]:
    """Form-encoded arguments: one value -> a string, a repeated key -> a list of strings."""
    parsed = parse_qs(encoded, keep_blank_values=True)
    return {name: values[0] if len(values) == 1 else values for name, values in parsed.items()}


def arguments(environ: dict[str, Any]) -> dict[str, Any]:
    """GET: the query string.  Other methods: the body only, as that is what a signature covers."""
    if environ["REQUEST_METHOD"] == "GET":
        return form(environ.get("QUERY_STRING", ""))
    try:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        raise Refused("400 Bad Request", "bad Content-Length header") from None
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if kind == JSON:
        try:
            args = json.loads(body)
        except ValueError as exc:
            raise Refused("400 Bad Request", f"the body is not JSON: {exc}") from None
        if not isinstance(args, dict):
            raise Refused("400 Bad Request", "the JSON body must be an object of arguments")
        return args
    if kind in ("", FORM):
        return form(body.decode("utf-8", "replace"))
    raise Refused("415 Unsupported Media Type", f"the body must be {FORM} or {JSON}, not {kind}")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        task = TASKS.get(environ["PATH_INFO"])
        if task is None:
            raise Refused("404 Not Found", f"no function at {environ['PATH_INFO']}")
        if environ["REQUEST_METHOD"] not in METHODS:
            raise Refused("405 Method Not Allowed", f"method {environ['REQUEST_METHOD']} is not allowed")
        args = arguments(environ)
    except Refused as exc:
        status, answer = exc.status, {"status": "failure", "reason": str(exc)}
    else:
        try:
            status, answer = "200 OK", {"status": "success", "retval": task(args)}
        except Exception as exc:
            status, answer = "200 OK", {"status": "failure", "reason": str(exc)}
    start_response(status, [("Content-Type", JSON)])
    return [json.dumps(answer).encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    print(f"receiver listening on http://{host}:{port}", flush=True)
    make_server(host, port, app, handler_class=QuietHandler).serve_forever()

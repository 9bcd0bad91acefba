"""A :class:`dispatch.receiver.Receiver` served in process, over real HTTP.

Each test serves a Receiver with wsgiref or uvicorn in a thread, for the
cases the example receivers do not reach.  The example receivers themselves
(Flask, FastAPI, Django, Node), as separate processes called by the real
worker, are in tests/integration/test_receivers.py.
"""

from __future__ import annotations

import asyncio

import pytest
import requests

from dispatch.receiver import Receiver, receiver
from dispatch.signing import generate_secret
from tests.support import SIGNING_SECRET, send_signed, serving_asgi, serving_wsgi

SECRET = SIGNING_SECRET


# -- the Receiver in process: WSGI (wsgiref) and ASGI (uvicorn) over real HTTP ----------------------


def multiply(x, y):
    return int(x) * int(y)


def test_a_mapping_serves_functions_by_path():
    app = Receiver({"/multiply": multiply, "divide": lambda x, y: int(x) / int(y)})
    with serving_wsgi(app) as base:
        assert requests.get(f"{base}/multiply?x=6&y=7").json() == {"status": "success", "retval": 42}
        assert requests.get(f"{base}/divide/?x=1&y=4").json() == {"status": "success", "retval": 0.25}
        missing = requests.get(f"{base}/nope")
    assert missing.status_code == 404
    assert missing.json() == {"status": "failure", "reason": "no function at /nope; known: /multiply, /divide"}


def test_a_single_function_is_served_at_any_path():
    with serving_wsgi(Receiver(multiply)) as base:
        assert requests.get(f"{base}/anything/at/all?x=2&y=3").json()["retval"] == 6


@pytest.mark.parametrize(
    ("request_kwargs", "status", "reason"),
    [
        ({"method": "OPTIONS"}, 405, "method OPTIONS is not allowed; use one of GET, POST, PUT, PATCH, DELETE"),
        (
            {"method": "POST", "data": "x=1", "headers": {"Content-Type": "text/plain"}},
            415,
            "must be application/x-www-form-urlencoded or application/json, not text/plain",
        ),
        ({"method": "POST", "data": {"x": "9" * 100, "y": 1}}, 413, "larger than 64 bytes"),
    ],
)
def test_requests_outside_the_protocol_are_refused_with_a_failure_body(request_kwargs, status, reason):
    with serving_wsgi(Receiver(multiply, max_body_bytes=64)) as base:
        answer = requests.request(url=f"{base}/multiply", timeout=10, **request_kwargs)
    assert answer.status_code == status
    assert answer.json()["status"] == "failure" and reason in answer.json()["reason"]
    if status == 405:
        assert answer.headers["Allow"] == "GET, POST, PUT, PATCH, DELETE"


@pytest.mark.parametrize(
    ("func", "reason"),
    [
        (lambda: object(), "the return value cannot be sent as JSON: Object of type object is not JSON serializable"),
        (lambda: float("nan"), "the return value cannot be sent as JSON: Out of range float values"),
        (lambda: {}["key"], "'key'"),
        (lambda: next(iter([])), "StopIteration"),
    ],
    ids=["not-json", "nan", "keyerror", "empty-message"],
)
def test_failures_are_answered_with_a_reason(func, reason):
    with serving_wsgi(Receiver(func)) as base:
        answer = requests.get(base)
    assert answer.status_code == 200
    assert answer.json()["status"] == "failure" and answer.json()["reason"].startswith(reason)


def test_arguments_are_strings_and_a_repeated_key_a_list():
    with serving_wsgi(Receiver(lambda **args: args)) as base:
        assert requests.get(f"{base}/?a=1&b=x&b=y&c=").json()["retval"] == {"a": "1", "b": ["x", "y"], "c": ""}
        posted = requests.post(f"{base}/?ignored=1", data={"name": "Zürich ☃"}).json()["retval"]
    assert posted == {"name": "Zürich ☃"}


def test_an_async_function_is_awaited_under_wsgi():
    async def slow_add(x, y):
        await asyncio.sleep(0)
        return int(x) + int(y)

    with serving_wsgi(Receiver(slow_add)) as base:
        assert requests.get(f"{base}/?x=2&y=3").json() == {"status": "success", "retval": 5}


def test_the_decorator_makes_a_receiver_and_keeps_the_function():
    @receiver
    def add(x, y):
        return int(x) + int(y)

    @receiver(secret=SECRET)
    def signed_add(x, y):
        return int(x) + int(y)

    assert isinstance(add, Receiver) and add.func("2", "3") == 5
    assert signed_add.secrets == [SECRET]
    with serving_wsgi(add) as base:
        assert requests.get(f"{base}/?x=2&y=3").json()["retval"] == 5


def test_a_bad_secret_fails_when_the_receiver_is_built():
    with pytest.raises(ValueError, match="base64"):
        Receiver(multiply, secret="my password")


def test_with_several_secrets_any_of_them_is_accepted_and_a_refused_call_never_runs():
    old, new, calls = generate_secret(), generate_secret(), []

    def record(x):
        calls.append(x)
        return x

    with serving_wsgi(Receiver(record, secret=[new, old])) as base:
        assert send_signed("GET", f"{base}/record", {"x": "old"}, secret=old).json()["retval"] == "old"
        assert send_signed("POST", f"{base}/record", {"x": "new"}, secret=new).json()["retval"] == "new"
        refused = send_signed("GET", f"{base}/record", {"x": "other"}, secret=generate_secret())
    assert refused.status_code == 401
    assert calls == ["old", "new"]


def test_asgi_app_checks_signatures_and_strips_its_mount_point():
    from starlette.applications import Starlette
    from starlette.routing import Mount

    async def add(x, y):
        return int(x) + int(y)

    receiver_app = Receiver({"/add": add, "/multiply": multiply}, secret=SECRET).as_asgi()
    with serving_asgi(receiver_app) as base:  # lifespan="on": startup must complete
        assert send_signed("GET", f"{base}/add", {"x": 2, "y": 3}).json()["retval"] == 5
        assert requests.get(f"{base}/add?x=2&y=3").status_code == 401
    with serving_asgi(Starlette(routes=[Mount("/hooks", receiver_app)])) as base:
        assert send_signed("POST", f"{base}/hooks/multiply", {"x": 6, "y": 7}).json()["retval"] == 42
        assert send_signed("GET", f"{base}/hooks/nope", {}).status_code == 404

"""Receivers: dispatch.receiver under Flask, FastAPI (uvicorn) and Django, and a plain Node one.

The example receivers in examples/receivers/ run as separate processes and
are called by the real worker (RabbitMQ, Redis, ``dramatiq dispatch.tasks``),
so what the README shows is what is tested.  Each also runs with
``DISPATCH_SIGNING_SECRET`` set and is sent signed and unsigned requests over
real HTTP.  The in-process tests below them serve a :class:`Receiver` with
wsgiref or uvicorn in a thread, for the cases the examples do not reach.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
from conftest import free_port, wait_for

from dispatch import URL, BadStatusError, RemoteExecuteError
from dispatch.receiver import Receiver, receiver
from dispatch.signing import generate_secret, sign_request

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "receivers"
SECRET = generate_secret()

#: name -> (command without the port, path prefix of the functions)
RECEIVERS = {
    "flask": ([sys.executable, str(EXAMPLES / "flask_app.py")], ""),
    "fastapi": ([sys.executable, str(EXAMPLES / "fastapi_app.py")], "/tasks"),
    "django": ([sys.executable, str(EXAMPLES / "django_app.py")], ""),
    "node": (["node", str(EXAMPLES / "node_receiver.js")], ""),
}


class ReceiverProcess:
    """One example receiver on a free port; ``secret`` turns signature checks on."""

    def __init__(self, name: str, log_path: Path, secret: str = "") -> None:
        command, self.prefix = RECEIVERS[name]
        self.name = name
        self.base = f"http://127.0.0.1:{free_port()}"
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [*command, self.base.rsplit(":", 1)[1]],
                env={**os.environ, "DISPATCH_SIGNING_SECRET": secret},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, 30, f"the {name} receiver to answer")

    def _healthy(self) -> bool:
        assert self.process.poll() is None, f"{self.name} receiver exited: {self.log_path.read_text()}"
        try:
            return requests.get(self.base + "/health", timeout=1).ok
        except requests.ConnectionError:
            return False

    def url(self, function: str) -> str:
        return f"{self.base}{self.prefix}/{function}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module", params=list(RECEIVERS))
def app(request, tmp_path_factory) -> Iterator[ReceiverProcess]:
    process = ReceiverProcess(request.param, tmp_path_factory.mktemp("receiver") / f"{request.param}.log")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=list(RECEIVERS))
def signed_app(request, tmp_path_factory) -> Iterator[ReceiverProcess]:
    log = tmp_path_factory.mktemp("receiver") / f"{request.param}-signed.log"
    process = ReceiverProcess(request.param, log, secret=SECRET)
    yield process
    process.stop()


def send_signed(
    method: str,
    url: str,
    params: dict,
    secret: str = SECRET,
    now: int | None = None,
    tamper: Callable[[requests.PreparedRequest], None] | None = None,
) -> requests.Response:
    """Sign exactly what goes on the wire: prepare the request, then sign its URL and body."""
    in_body = "params" if method == "GET" else "data"
    prepared = requests.Request(method, url, **{in_body: params}).prepare()
    msg_id = f"msg_{uuid.uuid4().hex}"
    prepared.headers.update(sign_request(secret, msg_id, prepared.method, prepared.url, prepared.body, now=now))
    if tamper:
        tamper(prepared)
    with requests.Session() as session:
        return session.send(prepared, timeout=10)


# -- the example receivers, called by the real worker ----------------------------------------------


@pytest.mark.integration
def test_get_call_returns_the_functions_retval(worker, app):
    assert URL(app.url("multiply")).send(x=6, y=7).get(timeout=10) == 42


@pytest.mark.integration
def test_post_call_takes_arguments_from_the_form_body(worker, app):
    assert URL(app.url("multiply"), method="POST").send(x=6, y=7).get(timeout=10) == 42
    # On POST only the (signable) body carries arguments, not the URL's own query.
    assert URL(app.url("echo?ignored=1"), method="POST").send(b=2).get(timeout=10) == {"b": "2"}


@pytest.mark.integration
def test_an_exception_becomes_a_remote_execute_error_with_its_message(worker, app):
    with pytest.raises(RemoteExecuteError) as caught:
        URL(app.url("divide")).send(x=1, y=0).get(timeout=10)
    assert str(caught.value) == "division by zero"


@pytest.mark.integration
def test_unicode_and_repeated_arguments_arrive_intact(worker, app):
    sent = {"name": "Ǳijkstra ☃", "city": "Zürich", "tags": ["a", "日本語"], "empty": ""}
    assert URL(app.url("echo")).send(**sent).get(timeout=10) == sent
    assert URL(app.url("echo"), method="POST").send(**sent).get(timeout=10) == sent


@pytest.mark.integration
def test_missing_arguments_fail_with_a_clear_reason(worker, app):
    if app.name == "node":
        pytest.skip("the Node example leaves argument checks to JavaScript")
    with pytest.raises(RemoteExecuteError, match=r"^bad arguments for multiply\(\): missing a required argument: 'y'$"):
        URL(app.url("multiply")).send(x=6).get(timeout=10)


# -- the example receivers, signed ------------------------------------------------------------------


@pytest.mark.integration
def test_signed_get_and_post_are_answered(signed_app):
    answer = send_signed("GET", signed_app.url("multiply"), {"x": 6, "y": 7})
    assert (answer.status_code, answer.json()) == (200, {"status": "success", "retval": 42})
    answer = send_signed("POST", signed_app.url("echo"), {"city": "Zürich ☃", "tags": ["a", "b"]})
    assert (answer.status_code, answer.json()) == (
        200,
        {"status": "success", "retval": {"city": "Zürich ☃", "tags": ["a", "b"]}},
    )


@pytest.mark.integration
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unsigned_requests_get_401_with_a_failure_body(signed_app, method):
    answer = requests.request(method, signed_app.url("multiply"), params={"x": 6, "y": 7}, data={"x": 6, "y": 7})
    assert answer.status_code == 401
    assert answer.json()["status"] == "failure"
    assert answer.json()["reason"].startswith("signature check failed: unsigned request")


def _change_y(prepared: requests.PreparedRequest) -> None:
    # same length, so Content-Length still fits
    prepared.url = prepared.url.replace("y=7", "y=8")
    if prepared.body:
        prepared.body = prepared.body.replace("y=7", "y=8")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "change"),
    [
        ("GET", {"tamper": _change_y}),
        ("POST", {"tamper": _change_y}),
        ("GET", {"secret": generate_secret()}),
        ("GET", {"now": int(time.time()) - 600}),
    ],
    ids=["query-changed", "body-changed", "other-secret", "stale"],
)
def test_bad_signatures_get_401(signed_app, method, change):
    answer = send_signed(method, signed_app.url("multiply"), {"x": 6, "y": 7}, **change)
    assert answer.status_code == 401, answer.text
    assert answer.json()["reason"].startswith("signature check failed")


@pytest.mark.integration
def test_an_unsigned_call_from_the_worker_to_a_signed_receiver_fails_with_401(worker, signed_app):
    with pytest.raises(BadStatusError, match="HTTP 401"):
        URL(signed_app.url("multiply")).send(x=6, y=7).get(timeout=10)


# -- the Receiver in process: WSGI (wsgiref) and ASGI (uvicorn) over real HTTP ----------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serving_wsgi(wsgi_app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, wsgi_app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_asgi(asgi_app) -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi_app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 20, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


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
        ({"method": "PUT"}, 405, "method PUT is not allowed; use GET or POST"),
        ({"method": "POST", "json": {"x": 1, "y": 2}}, 415, "must be application/x-www-form-urlencoded"),
        ({"method": "POST", "data": {"x": "9" * 100, "y": 1}}, 413, "larger than 64 bytes"),
    ],
)
def test_requests_outside_the_protocol_are_refused_with_a_failure_body(request_kwargs, status, reason):
    with serving_wsgi(Receiver(multiply, max_body_bytes=64)) as base:
        answer = requests.request(url=f"{base}/multiply", timeout=10, **request_kwargs)
    assert answer.status_code == status
    assert answer.json()["status"] == "failure" and reason in answer.json()["reason"]
    if status == 405:
        assert answer.headers["Allow"] == "GET, POST"


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

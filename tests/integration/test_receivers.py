"""Receivers: dispatch.receiver under Flask, FastAPI (uvicorn) and Django, and a plain Node one.

The example receivers in examples/receivers/ run as separate processes and
are called by the real worker (RabbitMQ, Redis, ``dramatiq dispatch.tasks``),
so what the README shows is what is tested.  Each also runs with
``DISPATCH_SIGNING_SECRET`` set and is sent signed and unsigned requests over
real HTTP.  The in-process tests below them serve a :class:`Receiver` with
wsgiref or uvicorn in a thread, for the cases the examples do not reach.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dispatch import URL, BadStatusError, RemoteExecuteError
from dispatch.signing import generate_secret

from .support import SIGNING_SECRET, ServedProcess, free_port, send_signed, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "receivers"
SECRET = SIGNING_SECRET

#: name -> (command without the port, path prefix of the functions)
RECEIVERS = {
    "flask": ([sys.executable, str(EXAMPLES / "flask_app.py")], ""),
    "fastapi": ([sys.executable, str(EXAMPLES / "fastapi_app.py")], "/tasks"),
    "django": ([sys.executable, str(EXAMPLES / "django_app.py")], ""),
    "node": (["node", str(EXAMPLES / "node_receiver.js")], ""),
}


class ReceiverProcess(ServedProcess):
    """One example receiver on a free port; ``secret`` turns signature checks on."""

    def __init__(self, name: str, log_path: Path, secret: str = "") -> None:
        command, self.prefix = RECEIVERS[name]
        self.name = name
        port = free_port()
        env = {**os.environ, "DISPATCH_SIGNING_SECRET": secret}
        super().__init__([*command, str(port)], env, log_path, "/health", port=port, name=f"{name} receiver")

    def url(self, function: str) -> str:
        return f"{self.base}{self.prefix}/{function}"


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


#: How each receiver words a missing argument: Python's receivers bind the function's signature, Node checks by hand.
MISSING_Y = {"node": r"^missing argument: y$"}
MISSING_Y_PYTHON = r"^bad arguments for multiply\(\): missing a required argument: 'y'$"


@pytest.mark.integration
def test_missing_arguments_fail_with_a_clear_reason(worker, app):
    with pytest.raises(RemoteExecuteError, match=MISSING_Y.get(app.name, MISSING_Y_PYTHON)):
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
def test_an_unsigned_call_is_refused_and_the_caller_and_the_worker_log_say_why(worker, signed_app):
    """The session worker signs nothing: the receiver's 401 reason reaches BadStatusError and the log line."""
    res = URL(signed_app.url("multiply")).send(x=6, y=7)
    with pytest.raises(BadStatusError) as caught:
        res.get(timeout=10)
    assert str(caught.value).startswith("HTTP 401 ")  # the reason phrase is each framework's own
    assert f"from GET {signed_app.url('multiply')}: signature check failed: unsigned request" in str(caught.value)

    def logged() -> list[str]:  # the log line may follow the stored outcome by a moment
        return [line for line in worker.log().splitlines() if res.message_id in line and "failed" in line]

    line = wait_for(logged, 10, "the worker's log line for the call")[0]
    assert "BadStatusError" in line and "signature check failed: unsigned request" in line


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

"""Every shape of call a real worker sends, answered by dispatch.receiver in a process of its own (issue 21).

``tests/integration/receiver_app.py`` serves the same functions through each
adapter -- the Receiver as a WSGI app, FastAPI (uvicorn, mounted at ``/tasks``),
Flask and Django -- and the real worker (RabbitMQ, Redis, ``dramatiq
dispatch.tasks``) calls them with GET, a form POST, a JSON POST, PUT, PATCH and
DELETE; once unsigned, and once signed by a worker holding the receiver's secret.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from dispatch import URL, RemoteExecuteError
from dispatch.signing import sign_request

from .support import SIGNING_SECRET, IsolatedWorker, ServedProcess, delete_queues, free_port

JSON = "application/json"
APP = Path(__file__).resolve().parent / "receiver_app.py"
ADAPTERS = {"wsgi": "", "fastapi": "/tasks", "flask": "", "django": ""}

#: (method, body format) -> what ``echo`` gives back for SENT: a form's values as strings, JSON's with their types.
SENT = {"n": 6, "f": 1.5, "flag": True, "items": [1, "日本語"], "city": "Zürich ☃"}
AS_FORM = {"n": "6", "f": "1.5", "flag": "True", "items": ["1", "日本語"], "city": "Zürich ☃"}
SHAPES = {
    ("GET", "form"): AS_FORM,
    ("POST", "form"): AS_FORM,
    ("POST", "json"): SENT,
    ("PUT", "json"): SENT,
    ("PATCH", "json"): SENT,
    ("DELETE", "json"): SENT,
    ("PUT", "form"): AS_FORM,
    ("PATCH", "form"): AS_FORM,
    ("DELETE", "form"): AS_FORM,
}


class ReceiverApp(ServedProcess):
    """receiver_app.py under one adapter on a free port; ``secret`` turns signature checks on."""

    def __init__(self, adapter: str, log_path: Path, secret: str = "") -> None:
        self.adapter, self.prefix, self.signed = adapter, ADAPTERS[adapter], bool(secret)
        port = free_port()
        super().__init__(
            [sys.executable, str(APP), adapter, str(port)],
            {**os.environ, "DISPATCH_SIGNING_SECRET": secret},
            log_path,
            "",
            port=port,
            name=f"{adapter} receiver",
            answers=lambda response: True,  # any answer (a 404, a 401) will do: it is serving
        )

    def url(self, function: str) -> str:
        return f"{self.base}{self.prefix}/{function}"


Call = Callable[..., object]


@pytest.fixture(scope="module")
def signing_worker(vhost, redis_db, python_endpoint, tmp_path_factory) -> Iterator[IsolatedWorker]:
    log = tmp_path_factory.mktemp("worker") / "signing-worker.log"
    worker = IsolatedWorker(log, {"DISPATCH_SIGNING_SECRET": SIGNING_SECRET})
    try:
        yield worker.ready(python_endpoint)
    finally:
        worker.stop()
        delete_queues(worker.queue)


@pytest.fixture(scope="module", params=[(adapter, signed) for adapter in ADAPTERS for signed in ("unsigned", "signed")])
def served(request, tmp_path_factory) -> Iterator[tuple[ReceiverApp, Call]]:
    """A receiver app and how to call it: through the session's worker, or (signed) through a signing one."""
    adapter, signed = request.param
    log = tmp_path_factory.mktemp("receiver") / f"{adapter}-{signed}.log"
    app = ReceiverApp(adapter, log, secret=SIGNING_SECRET if signed == "signed" else "")
    if signed == "signed":
        worker = request.getfixturevalue("signing_worker")

        def call(url: str, method: str, body: str, **params: object) -> object:
            return worker.send(url, method, params, **({"body": body} if body != "form" else {})).get(timeout=20)
    else:
        request.getfixturevalue("worker")

        def call(url: str, method: str, body: str, **params: object) -> object:
            return URL(url, method, body=body).send(**params).get(timeout=20)

    yield app, call
    app.stop()


@pytest.mark.integration
@pytest.mark.parametrize(("method", "body"), list(SHAPES), ids=[f"{m}-{b}" for m, b in SHAPES])
def test_every_shape_the_worker_sends_is_answered(served, method, body):
    app, call = served
    assert call(app.url("echo"), method, body, **SENT) == SHAPES[method, body]
    assert call(app.url("multiply"), method, body, x=6, y=7) == 42


@pytest.mark.integration
@pytest.mark.parametrize(("method", "body"), [("GET", "form"), ("PUT", "json"), ("DELETE", "form")])
def test_a_missing_argument_is_a_remote_failure_with_the_reason(served, method, body):
    app, call = served
    with pytest.raises(RemoteExecuteError, match=r"^bad arguments for multiply\(\): missing a required argument: 'y'$"):
        call(app.url("multiply"), method, body, x=6)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"x": 6,', "the body is not valid JSON: "),
        (b"[6, 7]", "a JSON body must be an object of arguments, not an array"),
    ],
)
def test_a_malformed_json_body_is_a_400_failure_with_the_reason(served, body, reason):
    app, _ = served
    prepared = requests.Request("PUT", app.url("multiply"), data=body, headers={"Content-Type": JSON}).prepare()
    if app.signed:  # signed as sent: the signature holds, and the body is refused for what it is
        prepared.headers.update(sign_request(SIGNING_SECRET, f"msg_{uuid.uuid4().hex}", "PUT", prepared.url, body))
    with requests.Session() as session:
        answer = session.send(prepared, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["status"] == "failure" and answer.json()["reason"].startswith(reason)

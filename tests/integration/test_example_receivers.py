"""Every receiver in examples/receivers/ takes every shape of call a worker sends, signed.

Each example runs as its own process (Python, Node.js, Ruby) and is called by a
real ``dramatiq dispatch.tasks`` worker that signs its calls
(``DISPATCH_SIGNING_SECRET``), for each shape the sender offers: GET with the
arguments in the query string, and POST, PUT, PATCH and DELETE with them in a
form or a JSON body.  For each shape: a result comes back, JSON arguments keep
their JSON types (form and query ones arrive as strings), and a missing or
malformed argument is refused with a ``failure`` answer.

The examples that check signatures get the worker's secret, so every call also
proves their check accepts what the worker signs; node_standardwebhooks.js
checks with the ``standardwebhooks`` npm package, and a receiver in this file
with the PyPI one, as docs/protocol.md shows them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
import standardwebhooks

from dispatch import RemoteExecuteError

from .support import SIGNING_SECRET, IsolatedWorker, ServedProcess, delete_queues, free_port, send_signed

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "receivers"
PYTHON = sys.executable


@dataclass(frozen=True)
class Example:
    command: tuple[str, ...]
    prefix: str = ""  # where its functions are mounted
    #: Built on dispatch.receiver, whose PUT/PATCH/DELETE and JSON bodies are another part of issue 21.
    on_dispatch_receiver: bool = False


RECEIVERS = {
    "plain_python": Example((PYTHON, "plain_python.py")),
    "node": Example(("node", "node_receiver.js")),
    "node_standardwebhooks": Example(("node", "node_standardwebhooks.js")),
    "rails": Example(("ruby", "rails_app.rb")),
    "django_view": Example((PYTHON, "django_app.py"), prefix="/view"),
    "django": Example((PYTHON, "django_app.py"), on_dispatch_receiver=True),
    "flask": Example((PYTHON, "flask_app.py"), on_dispatch_receiver=True),
    "fastapi": Example((PYTHON, "fastapi_app.py"), prefix="/tasks", on_dispatch_receiver=True),
}

#: (method, body format) for every shape of call the sender offers.
SHAPES = [("GET", "form")] + [
    (method, body) for method in ("POST", "PUT", "PATCH", "DELETE") for body in ("form", "json")
]

#: What /echo is sent, and what it answers: form and query values arrive as strings, JSON ones as sent.
FORM_ARGS = {"city": "Zürich ☃", "tags": ["a", "日本語"], "n": 1, "empty": ""}
FORM_ECHO = {"city": "Zürich ☃", "tags": ["a", "日本語"], "n": "1", "empty": ""}
JSON_ARGS = {
    "n": 1.5,
    "i": -3,
    "flag": True,
    "none": None,
    "city": "Zürich ☃",
    "meta": {"source": "shop", "tags": ["a", "b"], "nested": {"deep": [1, "2", None, False]}},
}


def _missing(what: str) -> str | None:
    """Why an example's runtime is not here, or None."""
    if what == "node_standardwebhooks" and not (EXAMPLES / "node_modules" / "standardwebhooks").exists():
        if not shutil.which("npm"):
            return "npm is not installed"
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXAMPLES, capture_output=True, text=True)
        return None if done.returncode == 0 else f"npm ci failed: {done.stderr[-500:]}"
    if what == "rails":
        if not shutil.which("ruby"):
            return "ruby is not installed (apt-get install ruby)"
        check = ["ruby", "-e", 'require "action_controller"; require "rack/handler/webrick"']
        if subprocess.run(check, capture_output=True).returncode != 0:
            return "Action Pack or WEBrick is missing (apt-get install ruby-actionpack ruby-webrick)"
    return None


class Running(ServedProcess):
    """One example receiver on a free port, holding the workers' signing secret."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name, self.example = name, RECEIVERS[name]
        port = free_port()
        super().__init__(
            [*self.example.command, str(port)],
            {**os.environ, "DISPATCH_SIGNING_SECRET": SIGNING_SECRET},
            log_path,
            "/health",
            port=port,
            name=f"{name} receiver",
            cwd=EXAMPLES,
        )

    def url(self, function: str) -> str:
        return f"{self.base}{self.example.prefix}/{function}"


@pytest.fixture(scope="module")
def signing_worker(vhost, redis_db, python_endpoint, tmp_path_factory) -> Iterator[IsolatedWorker]:
    """A worker of this module's own, signing every call with the receivers' secret."""
    log = tmp_path_factory.mktemp("signing-worker") / "worker.log"
    worker = IsolatedWorker(log, {"DISPATCH_SIGNING_SECRET": SIGNING_SECRET}).ready(python_endpoint)
    yield worker
    worker.stop()
    delete_queues(worker.queue)


@pytest.fixture(scope="module", params=list(RECEIVERS))
def receiver(request, tmp_path_factory) -> Iterator[Running]:
    reason = _missing(request.param)
    if reason:
        pytest.skip(f"the {request.param} example cannot run here: {reason}")
    running = Running(request.param, tmp_path_factory.mktemp("example") / f"{request.param}.log")
    yield running
    running.stop()


def _outcome(res):
    try:
        return res.get(timeout=30)
    except Exception as exc:  # compared below, with the class
        return exc


@pytest.mark.parametrize(("method", "body"), SHAPES, ids=[f"{m}-{b}" if m != "GET" else m for m, b in SHAPES])
def test_every_shape_of_call_is_answered(signing_worker, receiver, method, body):
    def send(function: str, params: dict):
        return signing_worker.send(
            receiver.url(function), method, params, **({"body": "json"} if body == "json" else {})
        )

    json_body = body == "json" and method != "GET"
    calls = {
        "multiply": send("multiply", {"x": 6, "y": 7}),
        "echo": send("echo", JSON_ARGS if json_body else FORM_ARGS),
        "missing": send("multiply", {"x": 6}),
        "malformed": send("multiply", {"x": "six", "y": 7}),
        "zero": send("divide", {"x": 1, "y": 0}),
    }
    got = {name: _outcome(res) for name, res in calls.items()}
    assert got["multiply"] == 42, got
    assert got["echo"] == (JSON_ARGS if json_body else FORM_ECHO), got
    assert isinstance(got["missing"], RemoteExecuteError), got
    assert "missing" in str(got["missing"]) and "y" in str(got["missing"]), got
    assert isinstance(got["malformed"], RemoteExecuteError), got
    assert "six" in str(got["malformed"]), got
    assert isinstance(got["zero"], RemoteExecuteError), got
    assert str(got["zero"]) == "division by zero", got


def test_json_arguments_keep_their_types_in_arithmetic(signing_worker, receiver):
    """A JSON 6 is an integer to the receiver, a JSON "6" a string it may still read as one."""
    if receiver.example.on_dispatch_receiver:
        pytest.skip("the dispatch.receiver examples' functions are int(x) * int(y): any value int() takes")
    res = signing_worker.send(receiver.url("multiply"), "POST", {"x": True, "y": 7}, body="json")
    with pytest.raises(RemoteExecuteError, match="x must be an integer, not true"):
        res.get(timeout=30)
    assert signing_worker.send(receiver.url("multiply"), "PUT", {"x": "6", "y": 7}, body="json").get(timeout=30) == 42


# -- the standardwebhooks libraries, as docs/protocol.md shows them -----------------------------------


@pytest.fixture(scope="module")
def node_standardwebhooks(tmp_path_factory) -> Iterator[Running]:
    reason = _missing("node_standardwebhooks")
    if reason:
        pytest.skip(reason)
    running = Running("node_standardwebhooks", tmp_path_factory.mktemp("example") / "swh.log")
    yield running
    running.stop()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_npm_library_receiver_refuses_unsigned_and_tampered_calls(node_standardwebhooks, method):
    url = node_standardwebhooks.url("multiply")
    signed = send_signed(method, url, {"x": 6, "y": 7})
    assert (signed.status_code, signed.json()) == (200, {"status": "success", "retval": 42})

    unsigned = requests.request(method, url, params={"x": 6, "y": 7}, data={"x": 6, "y": 7}, timeout=10)
    assert unsigned.status_code == 401
    assert unsigned.json() == {"status": "failure", "reason": "signature check failed: Missing required headers"}

    def change_y(prepared: requests.PreparedRequest) -> None:
        assert isinstance(prepared.url, str) and isinstance(prepared.body, (str, type(None)))
        prepared.url = prepared.url.replace("y=7", "y=8")  # GET: the query; POST: the body (same length)
        prepared.body = prepared.body and prepared.body.replace("y=7", "y=8")

    tampered = send_signed(method, url, {"x": 6, "y": 7}, tamper=change_y)
    assert tampered.status_code == 401
    assert tampered.json() == {"status": "failure", "reason": "signature check failed: No matching signature found"}


def test_the_npm_library_parses_json_by_default_and_throws_after_a_valid_signature():
    """Why node_standardwebhooks.js passes { jsonParse: false }: the default fails a form body it just verified."""
    reason = _missing("node_standardwebhooks")
    if reason:
        pytest.skip(reason)
    script = """
        const { Webhook } = require("standardwebhooks");
        const webhook = new Webhook(process.env.SECRET);
        const now = new Date();
        const headers = { "webhook-id": "msg_1", "webhook-timestamp": String(Math.floor(now / 1000)),
                          "webhook-signature": webhook.sign("msg_1", now, "x=6&y=7") };
        const out = { raw: webhook.verify("x=6&y=7", headers, { jsonParse: false }) ?? null };
        try { webhook.verify("x=6&y=7", headers); } catch (err) { out.default = `${err.name}: ${err.message}`; }
        console.log(JSON.stringify(out));
    """
    done = subprocess.run(
        ["node", "-e", script],
        cwd=EXAMPLES,
        env={**os.environ, "SECRET": SIGNING_SECRET},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["raw"] is None
    assert out["default"].startswith("SyntaxError: Unexpected token"), out


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _pypi_verified_echo(environ, start_response):
    """A receiver verifying with the PyPI ``standardwebhooks`` package, as docs/protocol.md shows it."""
    method = environ["REQUEST_METHOD"]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    payload = environ["QUERY_STRING"].encode("latin-1") if method == "GET" else body
    headers = {name: environ.get(f"HTTP_{name.upper().replace('-', '_')}", "") for name in _SIGNATURE_HEADERS}
    webhook = standardwebhooks.Webhook(SIGNING_SECRET)
    try:
        if environ.get("CONTENT_TYPE", "").startswith("application/json"):
            args = webhook.verify(payload, headers)  # the default, json_parse=True, returns the parsed body
        else:
            webhook.verify(payload, headers, json_parse=False)  # a query string or a form is not JSON
            args = payload.decode()
    except standardwebhooks.WebhookVerificationError as exc:
        status, answer = "401 Unauthorized", {"status": "failure", "reason": f"signature check failed: {exc}"}
    else:
        status, answer = "200 OK", {"status": "success", "retval": args}
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@pytest.fixture(scope="module")
def pypi_receiver() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, _pypi_verified_echo, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/echo"
    server.shutdown()


@pytest.mark.parametrize(("method", "body"), [("GET", "form"), ("POST", "form"), ("PUT", "json"), ("DELETE", "form")])
def test_the_pypi_library_verifies_every_shape_a_worker_signs(signing_worker, pypi_receiver, method, body):
    options = {"body": "json"} if body == "json" else {}
    got = signing_worker.send(pypi_receiver, method, {"x": 6, "y": "Zürich"}, **options).get(timeout=30)
    assert got == ({"x": 6, "y": "Zürich"} if body == "json" else "x=6&y=Z%C3%BCrich")


def test_the_pypi_library_parses_json_by_default_and_throws_after_a_valid_signature():
    """Why the receiver above passes json_parse=False for a query string or a form body."""
    webhook = standardwebhooks.Webhook(SIGNING_SECRET)
    now = datetime.now(timezone.utc)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp()))}
    headers["webhook-signature"] = webhook.sign("msg_1", now, b"x=6&y=7")
    assert webhook.verify(b"x=6&y=7", headers, json_parse=False) is None
    with pytest.raises(json.JSONDecodeError):
        webhook.verify(b"x=6&y=7", headers)


# -- the Rails example, checked even where it cannot run ------------------------------------------------


@pytest.mark.parametrize("script", ["rails_controller.rb", "rails_app.rb"])
def test_the_rails_example_is_valid_ruby(script):
    if not shutil.which("ruby"):
        pytest.skip("ruby is not installed (apt-get install ruby)")
    done = subprocess.run(["ruby", "-c", str(EXAMPLES / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

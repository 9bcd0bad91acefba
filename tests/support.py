"""What unit and integration tests (and the benchmarks) share: the checkout's root, free ports, waiting for a
condition, a server process, the ``dispatch`` command and the demo run as a user runs them, signed requests,
in-process servers.

Only names live here -- no fixtures, no side effects at import, and no import of ``dispatch`` until a
helper needs it.  What needs RabbitMQ, Redis or the run's
vhost and queue is in ``tests/integration/support.py``; what unit tests alone serve (the recording HTTP
server) is in ``tests/unit/conftest.py``.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

import requests

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


@functools.cache
def _signing_secret() -> str:
    from dispatch.signing import generate_secret

    return generate_secret()


def __getattr__(name: str) -> str:
    # SIGNING_SECRET, the secret receivers under test share with the requests signed for them, is made on
    # first use: the benchmark imports this module and must not import dispatch from the checkout (its
    # clients import a snapshot of it).
    if name == "SIGNING_SECRET":
        return _signing_secret()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServedProcess:
    """A server process on 127.0.0.1:``port``: started, waited on until ``health_path`` answers, stopped.

    ``command`` is run with ``env`` (the whole environment; None inherits this one) in ``cwd``; its output
    goes to ``log_path`` (None: this process's). ``answers`` says which answer means it is up (a 2xx,
    unless told); one that exits before is a failure that shows its log.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None,
        log_path: Path | None,
        health_path: str,
        *,
        port: int,
        name: str,
        cwd: Path | None = None,
        answers: Callable[[requests.Response], bool] = lambda response: response.ok,
        timeout: float = 30,
    ) -> None:
        self.port, self.log_path, self._name = port, log_path, name
        self.base = f"http://127.0.0.1:{port}"
        self._health, self._answers = health_path, answers
        self._log_file = open(log_path, "w") if log_path else None  # noqa: SIM115 -- closed in stop()
        output = subprocess.STDOUT if self._log_file else None
        env = None if env is None else dict(env)
        self.process = subprocess.Popen(list(command), env=env, stdout=self._log_file, stderr=output, cwd=cwd)
        wait_for(self._up, timeout, f"the {name} to answer")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            shown = self.log_path.read_text() if self.log_path else f"exit status {self.process.returncode}"
            raise AssertionError(f"the {self._name} exited: {shown}")
        try:
            return self._answers(requests.get(self.base + self._health, timeout=1))
        except requests.ConnectionError:
            return False

    def stop(self, timeout: float = 20) -> None:
        """Terminate it and wait (a kill when it will not end); its log is kept."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file:
            self._log_file.close()


def dispatch(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``dispatch ARGS...`` to completion; stdout and stderr are kept for assertions."""
    return subprocess.run(
        [sys.executable, "-m", "dispatch.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def run_demo(**env: str) -> str:
    """Run ``examples/demo.py`` with ``env`` added; its output, once it exited 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def send_signed(
    method: str,
    url: str,
    params: dict[str, Any],
    secret: str | None = None,
    now: int | None = None,
    tamper: Callable[[requests.PreparedRequest], None] | None = None,
) -> requests.Response:
    """Sign exactly what goes on the wire: prepare the request, then sign its URL and body (with ``secret``,
    ``SIGNING_SECRET`` unless told)."""
    from dispatch.signing import sign_request

    in_body = "params" if method == "GET" else "data"
    prepared = requests.Request(method, url, **{in_body: params}).prepare()
    msg_id = f"msg_{uuid.uuid4().hex}"
    key = _signing_secret() if secret is None else secret
    prepared.headers.update(sign_request(key, msg_id, prepared.method, prepared.url, prepared.body, now=now))
    if tamper:
        tamper(prepared)
    with requests.Session() as session:
        return session.send(prepared, timeout=10)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class AnsweringHandler(BaseHTTPRequestHandler):
    """A test endpoint's request handler: keep-alive, no log lines, and :meth:`answer` to reply in one call."""

    protocol_version = "HTTP/1.1"

    def answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving_handler(handler: type[BaseHTTPRequestHandler], **attributes: Any) -> Iterator[ThreadingHTTPServer]:
    """Serve ``handler`` on a free port in a thread; ``attributes`` are set on the server (handlers read
    them as ``self.server.<name>``).  Yields the server; its base URL is ``http://127.0.0.1:<server_port>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_wsgi(wsgi_app: Any) -> Iterator[str]:
    """Serve ``wsgi_app`` with wsgiref in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_asgi(asgi_app: Any) -> Iterator[str]:
    """Serve ``asgi_app`` with uvicorn in a thread, lifespan on; yields its base URL once it has started."""
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

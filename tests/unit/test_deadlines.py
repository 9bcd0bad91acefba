"""``Request.timeout`` bounds the whole attempt: connect, headers and body, however slowly a server drips.

urllib3's timeout bounds each socket operation; a server sending one byte
a second never trips it.  These servers (raw sockets in threads) drip
their headers or their body, and each attempt must end within the timeout
plus a little -- not after the many seconds the drip would take.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dispatch.retries import AttemptFailed
from dispatch.transport import Request, Transport

TIMEOUT = 1.5
SLACK = 3.0  # generous for a loaded machine; the drips below take 30 s or more

ANSWER = b'{"status": "success", "retval": "whole"}'


class DripServer:
    """Accepts connections on 127.0.0.1 and runs ``script(connection, stop)`` for each, in a thread."""

    def __init__(self, script: Callable[[socket.socket, threading.Event], None]) -> None:
        self.script = script
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)  # the request
            self.script(connection, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def drip(connection: socket.socket, stop: threading.Event, data: bytes, every: float = 0.5) -> None:
    for byte in data:
        if stop.wait(every):
            return
        connection.sendall(bytes([byte]))


def keep_answering(connection: socket.socket, stop: threading.Event) -> None:
    """A kept-alive connection answering every request at once."""
    while True:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
        if not connection.recv(65536):
            return


@pytest.fixture
def serve() -> Iterator[Callable[..., DripServer]]:
    servers: list[DripServer] = []

    def start(script):
        servers.append(DripServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def attempt(url: str, timeout: float = TIMEOUT) -> tuple[float, BaseException | bytes]:
    request = Request(url, "GET", {}, timeout=timeout, max_response_bytes=1_000_000)
    started = time.monotonic()
    try:
        outcome: BaseException | bytes = Transport().attempt(request).body
    except Exception as exc:
        outcome = exc
    return time.monotonic() - started, outcome


def test_slowly_dripped_headers_time_out(serve):
    headers = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    server = serve(lambda connection, stop: drip(connection, stop, headers))
    elapsed, outcome = attempt(server.url)
    assert isinstance(outcome, AttemptFailed), outcome
    assert "timed out" in str(outcome)
    assert elapsed < TIMEOUT + SLACK


def test_a_status_line_that_never_ends_times_out(serve):
    server = serve(lambda connection, stop: drip(connection, stop, b"HTTP/1.1 200 " + b"O" * 500))
    elapsed, outcome = attempt(server.url)
    assert isinstance(outcome, AttemptFailed) and "timed out" in str(outcome), outcome
    assert elapsed < TIMEOUT + SLACK


def test_a_slowly_dripped_body_with_a_length_times_out(serve):
    def script(connection, stop):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        drip(connection, stop, b" " * 1000, every=0.1)

    server = serve(script)
    elapsed, outcome = attempt(server.url)
    assert isinstance(outcome, AttemptFailed) and "timed out" in str(outcome), outcome
    assert elapsed < TIMEOUT + SLACK


def test_a_slowly_dripped_body_without_a_length_times_out_rather_than_look_complete(serve):
    def script(connection, stop):
        connection.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        drip(connection, stop, b" " * 1000 + ANSWER, every=0.1)

    server = serve(script)
    elapsed, outcome = attempt(server.url)
    assert isinstance(outcome, AttemptFailed) and "timed out" in str(outcome), outcome
    assert elapsed < TIMEOUT + SLACK


def test_a_slowly_dripped_chunked_body_times_out(serve):
    def script(connection, stop):
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not stop.wait(0.2):
            connection.sendall(b"1\r\n \r\n")

    server = serve(script)
    elapsed, outcome = attempt(server.url)
    assert isinstance(outcome, AttemptFailed) and "timed out" in str(outcome), outcome
    assert elapsed < TIMEOUT + SLACK


def test_a_server_that_accepts_and_says_nothing_times_out(serve):
    server = serve(lambda connection, stop: stop.wait(30))
    elapsed, outcome = attempt(server.url)
    assert isinstance(outcome, AttemptFailed) and "timed out" in str(outcome), outcome
    assert elapsed < TIMEOUT + SLACK


def test_a_quick_answer_is_unaffected_and_the_connection_is_kept(serve):
    server = serve(keep_answering)
    transport = Transport()
    request = Request(server.url, "GET", {}, timeout=TIMEOUT, max_response_bytes=1000)
    assert [transport.attempt(request).body for _ in range(3)] == [ANSWER] * 3
    assert server.connections == 1
    time.sleep(TIMEOUT + 0.5)  # the deadlines pass: the pooled connection must not be cut by them
    assert transport.attempt(request).body == ANSWER
    assert server.connections == 1


def test_a_deadline_that_passes_cuts_only_its_own_attempt(serve):
    slow = serve(lambda connection, stop: drip(connection, stop, b"HTTP/1.1 200 OK\r\n" + b"X" * 100))

    fast = serve(keep_answering)
    transport = Transport()
    results: list = []
    thread = threading.Thread(
        target=lambda: results.append(attempt(slow.url)),
    )
    thread.start()
    request = Request(fast.url, "GET", {}, timeout=30, max_response_bytes=1000)
    deadline = time.monotonic() + TIMEOUT + 1
    while time.monotonic() < deadline:
        assert transport.attempt(request).body == ANSWER
    thread.join(TIMEOUT + SLACK)
    assert isinstance(results[0][1], AttemptFailed)


def test_a_tls_handshake_that_never_comes_times_out(serve):
    server = serve(lambda connection, stop: stop.wait(30))
    elapsed, outcome = attempt(server.url.replace("http://", "https://"))
    assert isinstance(outcome, AttemptFailed) and "timed out" in str(outcome), outcome
    assert elapsed < TIMEOUT + SLACK

"""The attempt recorder: one dict per HTTP attempt of a delivery, per worker thread, redacted and bounded."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest
import urllib3

from dispatch.attempts import MAX_DETAIL, RECORDER, AttemptRecorder, describe
from dispatch.errors import DestinationRefused
from dispatch.policy import DestinationPolicy
from dispatch.redaction import register_secret
from dispatch.retries import AttemptFailed, retry_policy
from dispatch.transport import Request, Transport
from dispatch.transport._deadline import Deadline
from dispatch.transport._errors import mapped_errors
from tests.support import AnsweringHandler, serving_handler

AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class FlakyThenOk(AnsweringHandler):
    """503 for the first request, then 200 with a success answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.count += 1  # type: ignore[attr-defined]
        first = self.server.count == 1  # type: ignore[attr-defined]
        self.answer(*((503, b"busy") if first else (200, b'{"status": "success"}')))


@pytest.fixture
def flaky() -> Iterator[str]:
    with serving_handler(FlakyThenOk, count=0) as server:
        yield f"http://127.0.0.1:{server.server_port}/hook"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _recording_transport(policy: DestinationPolicy | None = None) -> tuple[Transport, AttemptRecorder]:
    recorder = AttemptRecorder()
    transport = Transport(policy=policy, observers=[recorder])
    recorder.reset()
    return transport, recorder


def _request(url: str) -> Request:
    return Request(url, "POST", {}, timeout=5, max_response_bytes=10_000, call_id="c")


def test_each_attempt_of_a_delivery_is_recorded_oldest_first(flaky):
    transport, recorder = _recording_transport()
    transport.deliver(_request(flaky), retry_policy(3, 0.01, 0.01, 1.0))
    first, second = recorder.take_delivery_attempts()
    assert first["status_code"] == 503 and first["error"] == "TransportError" and "503" in first["detail"]
    assert second["status_code"] == 200 and second["error"] is None and second["detail"] == ""
    assert first["wire"] and second["wire"]
    for attempt in (first, second):
        assert AT.match(attempt["at"]) and isinstance(attempt["duration_ms"], float) and attempt["duration_ms"] >= 0
    assert first["at"] <= second["at"]
    assert recorder.take_delivery_attempts() == []  # taken: cleared


def test_a_refused_connection_has_no_status_and_never_reached_the_wire():
    transport, recorder = _recording_transport()
    with pytest.raises(AttemptFailed):
        transport.attempt(_request(f"http://127.0.0.1:{_closed_port()}/hook"))
    (attempt,) = recorder.take_delivery_attempts()
    assert attempt["status_code"] is None and attempt["error"] == "TransportError" and attempt["wire"] is False


def test_a_destination_the_policy_refuses_never_reached_the_wire():
    transport, recorder = _recording_transport(DestinationPolicy(deny_private=True))
    with pytest.raises(DestinationRefused):
        transport.attempt(_request("http://127.0.0.1:9/hook"))
    (attempt,) = recorder.take_delivery_attempts()
    assert attempt["error"] == "DestinationRefused" and attempt["wire"] is False


def test_attempts_are_kept_per_thread_and_reset_per_delivery():
    recorder = AttemptRecorder()
    with recorder.observe("POST", "http://x/"):
        pass
    seen: list[list] = []
    thread = threading.Thread(target=lambda: seen.append(recorder.take_delivery_attempts()))
    thread.start()
    thread.join()
    assert seen == [[]]  # another thread's delivery sees none of ours
    recorder.reset()
    assert recorder.take_delivery_attempts() == []


def test_an_error_after_an_answer_reached_the_wire_and_an_interrupt_is_a_transport_error():
    answered = describe("t", 0.5, 503, AttemptFailed("HTTP 503"))
    assert answered["wire"] is True and answered["duration_ms"] == 500.0
    foreign = describe("t", 0.1, None, ValueError("bad hook"))
    assert foreign["error"] == "DispatchError" and foreign["detail"] == "ValueError: bad hook"
    cut = describe("t", 1.0, None, KeyboardInterrupt())
    assert cut["error"] == "TransportError" and cut["wire"] is True  # nothing says it was not written


def test_the_detail_is_redacted_and_bounded():
    register_secret("s3cret-token-value")
    error = AttemptFailed("failed for http://user:hunter22@h/ with s3cret-token-value " + "x" * 500)
    detail = describe("t", 0.0, None, error)["detail"]
    assert "hunter22" not in detail and "s3cret-token-value" not in detail and len(detail) == MAX_DETAIL


def test_the_shared_recorder_is_an_observer():
    RECORDER.reset()
    with RECORDER.observe("GET", "http://x/") as observation:
        observation.answered(204)
    (attempt,) = RECORDER.take_delivery_attempts()
    assert attempt["status_code"] == 204 and attempt["error"] is None


@pytest.mark.parametrize(
    ("error", "wire"),
    [
        (urllib3.exceptions.NewConnectionError(None, "refused"), False),
        (urllib3.exceptions.ConnectTimeoutError("connect timed out"), False),
        (socket.gaierror("no such name"), False),
        (urllib3.exceptions.ProtocolError("reset", ConnectionResetError()), True),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), True),
    ],
)
def test_the_transport_says_whether_a_failure_came_before_any_connection(error, wire):
    deadline = Deadline(5)
    with pytest.raises(AttemptFailed) as failed, deadline, mapped_errors(deadline, lambda: "http://h/"):
        raise error
    assert failed.value.reached_wire is wire
    assert describe("t", 0.0, None, failed.value)["wire"] is wire

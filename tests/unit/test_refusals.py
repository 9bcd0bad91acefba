"""A non-2xx answer whose body is a protocol ``failure`` carries its reason into BadStatusError (issue 21.2)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dispatch.errors import BadStatusError
from dispatch.protocol import MAX_REFUSAL_REASON, refusal_reason
from dispatch.redaction import register_secret
from dispatch.transport import Request, Transport
from tests.support import AnsweringHandler, serving_handler

#: path -> (status, body) the server answers with
ANSWERS: dict[str, tuple[int, bytes]] = {}


class Refuser(AnsweringHandler):
    def do_GET(self) -> None:
        status, body = ANSWERS[self.path.split("?")[0]]
        self.answer(status, body, Content_Type="application/json")


@pytest.fixture
def refuser() -> Iterator[str]:
    with serving_handler(Refuser) as server:
        yield f"http://127.0.0.1:{server.server_port}"


def answered(base: str, path: str, status: int, body: bytes) -> BadStatusError:
    ANSWERS[path] = (status, body)
    request = Request(f"{base}{path}", "GET", {"x": 6}, timeout=5, max_response_bytes=100_000, call_id="c")
    with pytest.raises(BadStatusError) as caught:
        Transport().attempt(request)
    return caught.value


def failure(reason: object) -> bytes:
    return json.dumps({"status": "failure", "reason": reason}).encode()


def test_a_401_with_a_failure_body_says_the_receivers_reason(refuser):
    reason = "signature check failed: unsigned request: missing webhook-* headers"
    error = answered(refuser, "/multiply", 401, failure(reason))
    assert str(error) == f"HTTP 401 Unauthorized from GET {refuser}/multiply: {reason}"


def test_the_reason_is_cut_short_and_its_secrets_masked(refuser):
    register_secret("hunter2-secret-value")
    error = answered(refuser, "/long", 403, failure("token hunter2-secret-value rejected\n" + "x" * 1000))
    reason = str(error).split(": ", 1)[1]
    assert "hunter2" not in str(error) and reason.startswith("token *** rejected x")
    assert len(reason) == MAX_REFUSAL_REASON and reason.endswith("...")


@pytest.mark.parametrize(
    "body",
    [b"<html>Not Found</html>", b"", b'{"status": "success", "retval": 1}', b"[1]", b"x" * 20_000],
    ids=["html", "empty", "success", "array", "too-large"],
)
def test_any_other_body_leaves_the_status_alone(refuser, body):
    assert str(answered(refuser, "/other", 404, body)) == f"HTTP 404 Not Found from GET {refuser}/other"


def test_refusal_reason_reads_only_a_failure():
    assert refusal_reason(failure("nope")) == "nope"
    assert refusal_reason(failure({"nested": True})) == "{'nested': True}"
    assert refusal_reason(failure("")) is None
    assert refusal_reason(b'{"status": "other", "reason": "x"}') is None
    assert refusal_reason(b"[" * 100_000) is None  # nested too deeply to decode

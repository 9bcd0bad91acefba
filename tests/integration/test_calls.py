"""The contract end to end: real RabbitMQ, real Redis, a real worker process, real endpoints.

Tests taking the ``endpoint`` fixture run twice: against a Python endpoint
and against a Node.js one.  Celery 3.1's ``test_http.py`` cases (success,
failure, empty body, non-JSON, unknown status, GET and POST, unicode
arguments) are restated here for this API.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dispatch import (
    URL,
    BadStatusError,
    DispatchError,
    InvalidResponseError,
    RemoteExecuteError,
    ResponseTooLargeError,
    ResultTimeout,
    TransportError,
    UnknownStatusError,
)

from .support import unique_key, wait_for

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 3  # the test worker's DISPATCH_MAX_ATTEMPTS


def test_get_success_returns_retval(worker, endpoint):
    res = URL(endpoint.url("/multiply")).send(x=10, y=10)
    assert res.get(timeout=10) == 100


def test_post_success_returns_retval(worker, endpoint):
    res = URL(endpoint.url("/multiply"), method="POST").send(x=10, y=10)
    assert res.get(timeout=10) == 100


def test_get_sends_params_in_query_keeping_the_urls_own(worker, endpoint):
    seen = URL(endpoint.url("/echo?a=1")).get_async(b=2, c=["x", "y"]).get(timeout=10)
    assert seen["method"] == "GET"
    assert seen["query"] == {"a": "1", "b": "2", "c": ["x", "y"]}
    assert seen["form"] == {}


def test_post_sends_params_form_encoded(worker, endpoint):
    seen = URL(endpoint.url("/echo?a=1")).post_async(b=2).get(timeout=10)
    assert seen["method"] == "POST"
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["form"] == {"b": "2"}
    assert seen["query"] == {"a": "1"}


def test_edited_query_is_what_gets_requested(worker, endpoint):
    url = URL(endpoint.url("/echo?a=1&drop=me"))
    url.query["a"] = "2"
    del url.query["drop"]
    assert url.send().get(timeout=10)["query"] == {"a": "2"}


def test_unicode_arguments_round_trip(worker, endpoint):
    seen = URL(endpoint.url("/echo")).send(name="Ǳijkstra ☃", city="Zürich").get(timeout=10)
    assert seen["query"] == {"name": "Ǳijkstra ☃", "city": "Zürich"}
    seen = URL(endpoint.url("/echo"), "POST").send(name="日本語").get(timeout=10)
    assert seen["form"] == {"name": "日本語"}


def test_every_request_carries_user_agent_and_idempotency_key(worker, endpoint):
    res = URL(endpoint.url("/echo")).send()
    headers = res.get(timeout=10)["headers"]
    assert headers["user-agent"].startswith("dispatch/")
    assert headers["idempotency-key"] == res.message_id


def test_remote_failure_raises_its_reason_and_is_not_retried(worker, endpoint):
    key = unique_key()
    res = URL(endpoint.url("/fail")).send(reason="division by zero", key=key)
    with pytest.raises(RemoteExecuteError) as caught:
        res.get(timeout=10)
    assert str(caught.value) == "division by zero"
    assert endpoint.hits(key) == 1


@pytest.mark.parametrize(
    ("path", "error", "text"),
    [
        ("/empty", InvalidResponseError, "empty response body"),
        ("/notjson", InvalidResponseError, "not JSON"),
        ("/array", InvalidResponseError, "not a JSON object"),
        ("/unknown", UnknownStatusError, "unknown status 'maybe'"),
    ],
)
def test_protocol_violations_raise_invalid_response(worker, endpoint, path, error, text):
    with pytest.raises(error) as caught:
        URL(endpoint.url(path)).send().get(timeout=10)
    assert text in str(caught.value)
    assert type(caught.value) is error


@pytest.mark.parametrize("code", [400, 404, 500])
def test_other_non_2xx_fails_at_once_naming_the_status(worker, endpoint, code):
    key = unique_key()
    with pytest.raises(BadStatusError, match=f"HTTP {code}"):
        URL(endpoint.url(f"/status/{code}")).send(key=key).get(timeout=10)
    assert endpoint.hits(key) == 1


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_then_raise_transport_error(worker, endpoint, code):
    key = unique_key()
    with pytest.raises(TransportError, match=f"{MAX_ATTEMPTS} attempt"):
        URL(endpoint.url(f"/status/{code}")).send(key=key).get(timeout=20)
    assert endpoint.hits(key) == MAX_ATTEMPTS


def test_transient_failures_recover(worker, endpoint):
    key = unique_key()
    res = URL(endpoint.url("/flaky")).send(key=key, fail=MAX_ATTEMPTS - 1, code=503)
    assert res.get(timeout=20) == MAX_ATTEMPTS


def test_per_call_max_attempts_overrides_the_worker(worker, endpoint):
    key = unique_key()
    with pytest.raises(TransportError, match="5 attempt"):
        URL(endpoint.url("/status/503"), max_attempts=5).send(key=key).get(timeout=20)
    assert endpoint.hits(key) == 5


def test_connection_refused_is_a_transport_error(worker):
    from .support import free_port

    with pytest.raises(TransportError, match="Connection refused"):
        URL(f"http://127.0.0.1:{free_port()}/x").send().get(timeout=20)


def test_connection_reset_is_retried_then_a_transport_error(worker, endpoint):
    key = unique_key()
    with pytest.raises(TransportError):
        URL(endpoint.url("/reset")).send(key=key).get(timeout=20)
    assert endpoint.hits(key) == MAX_ATTEMPTS


def test_each_attempt_has_a_timeout(worker, endpoint):
    key = unique_key()
    with pytest.raises(TransportError, match="timed out"):
        URL(endpoint.url("/slow"), timeout=0.3, max_attempts=2).send(ms=3000, key=key).get(timeout=20)
    assert endpoint.hits(key) == 2


@pytest.mark.parametrize("chunked", ["", "1"])
def test_response_over_the_cap_fails_the_call(worker, endpoint, chunked):
    # the test worker runs with DISPATCH_MAX_RESPONSE_BYTES=1000000
    with pytest.raises(ResponseTooLargeError, match="1000000-byte limit"):
        URL(endpoint.url("/big")).send(bytes=1_200_000, chunked=chunked).get(timeout=20)
    assert len(URL(endpoint.url("/big")).send(bytes=900_000, chunked=chunked).get(timeout=20)) == 900_000


def test_long_wait_outlasts_redis_default_socket_timeout(worker, python_endpoint):
    # redis-py 8's default socket timeout is 5 s; the blocking wait must outlast it.
    res = URL(python_endpoint.url("/slow"), timeout=20).send(ms=6500)
    assert res.get(timeout=90) == "slow"


def test_get_times_out_with_result_timeout_and_can_wait_again(worker, python_endpoint):
    res = URL(python_endpoint.url("/slow")).send(ms=2500)
    with pytest.raises(ResultTimeout):
        res.get(timeout=1)
    assert res.get(timeout=20) == "slow"


def test_dramatiq_message_api_works_on_the_handle(worker, endpoint):
    res = URL(endpoint.url("/multiply")).send(x=6, y=7)
    assert isinstance(res.message_id, str) and len(res.message_id) == 36
    assert res.get_result(block=True, timeout=10_000) == 42


def test_actor_send_returns_a_message_with_the_retval(worker, endpoint):
    from dramatiq import Message

    from dispatch.tasks import http_dispatch

    message = http_dispatch.send(endpoint.url("/multiply"), "POST", {"x": 3, "y": 4})
    assert isinstance(message, Message)
    assert message.get_result(block=True) == 12


def test_outcome_and_error_class_are_readable_from_another_process(worker, endpoint):
    ok = URL(endpoint.url("/multiply")).send(x=2, y=21)
    failed = URL(endpoint.url("/fail")).send(reason="nope ✗")
    script = """
import json, sys
from dispatch import CallResult
for fields in json.loads(sys.stdin.read()):
    try:
        print(json.dumps(["ok", CallResult(**fields).get(timeout=20)]))
    except Exception as exc:
        print(json.dumps([type(exc).__name__, str(exc)]))
"""
    handles = json.dumps([ok.asdict(), failed.asdict()])
    out = subprocess.run([sys.executable, "-c", script], input=handles, capture_output=True, text=True, timeout=60)
    assert [json.loads(line) for line in out.stdout.splitlines()] == [["ok", 42], ["RemoteExecuteError", "nope ✗"]]


def test_worker_logs_one_info_line_per_finished_call(worker, endpoint):
    ok = URL(endpoint.url("/multiply")).send(x=5, y=5)
    failed = URL(endpoint.url("/fail")).send(reason="no way")
    assert ok.get(timeout=10) == 25
    with pytest.raises(RemoteExecuteError):
        failed.get(timeout=10)

    def lines_for(message_id):
        return [line for line in worker.log().splitlines() if message_id in line and "dispatch.calls" in line]

    ok_lines = wait_for(lambda: lines_for(ok.message_id), 10, "the success log line")
    failed_lines = wait_for(lambda: lines_for(failed.message_id), 10, "the failure log line")
    assert len(ok_lines) == 1 and "INFO" in ok_lines[0] and ok_lines[0].endswith("processed: 25")
    assert len(failed_lines) == 1 and failed_lines[0].endswith("failed: RemoteExecuteError: no way")


def test_errors_share_the_dispatch_base(worker, endpoint):
    with pytest.raises(DispatchError):
        URL(endpoint.url("/unknown")).send().get(timeout=10)


def test_worker_settings_apply_to_its_calls(make_worker, python_endpoint):
    other = make_worker(DISPATCH_MAX_ATTEMPTS="2")
    key = unique_key()
    with pytest.raises(TransportError, match="2 attempt"):
        other.send(python_endpoint.url("/status/503"), params={"key": key}).get(timeout=20)
    assert python_endpoint.hits(key) == 2

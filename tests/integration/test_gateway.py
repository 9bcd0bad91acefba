"""The HTTP gateway end to end: real gateway processes (``serve``), a real worker, real endpoints.

Three gateways run for this module, each a separate uvicorn process:

* ``gateway`` feeds the session worker's queue and opens 127.0.0.1 (where the
  test endpoints listen) with ``DISPATCH_ALLOWED_HOSTS``: calls really happen.
* ``idle_gateway`` feeds a queue of its own that no worker consumes, so the
  tests can count what it enqueued (and that refused calls add nothing).
* ``closed_gateway`` has no ``DISPATCH_ALLOWED_HOSTS``: loopback is refused there.
  Its queue is one no worker consumes, deleted afterwards.

schemathesis runs against a gateway of its own, in test_gateway_fuzz.py.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dispatch.url import MAX_DELAY

from .support import ROOT, TEST_ENV, ServedProcess, delete_queues, free_port, queue_depth, unique_key, wait_for

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789abcdef"
ROTATED_TOKEN = "next-token-fedcba9876543210"


class Gateway(ServedProcess):
    """A ``dispatch.gateway.serve`` process and a tiny client for it."""

    def __init__(self, log_path: Path, **env: str) -> None:
        port = free_port()
        self.queue = env.get("DISPATCH_QUEUE", TEST_ENV["DISPATCH_QUEUE"])
        environ = {k: v for k, v in os.environ.items() if k not in ("DISPATCH_GATEWAY_TOKEN", "DISPATCH_ALLOWED_HOSTS")}
        super().__init__(
            [sys.executable, "-c", f"from dispatch.gateway import serve; serve('127.0.0.1', {port})"],
            {**environ, "DISPATCH_GATEWAY_TOKEN": f"{TOKEN},{ROTATED_TOKEN}", **env},
            log_path,
            "/openapi.json",
            port=port,
            name="gateway",
            cwd=ROOT,
        )

    def post(self, body: object, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(self.base + "/calls", json=body, headers=headers, timeout=30)

    def get(self, path: str, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.base + path, headers=headers, timeout=30)

    def delete(self, path: str, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.delete(self.base + path, headers=headers, timeout=30)

    def post_task(self, actor: str, body: object, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{self.base}/tasks/{actor}", json=body, headers=headers, timeout=30)

    def state(self, call_id: str) -> str:
        response = self.get(f"/calls/{call_id}")
        assert response.status_code == 200, response.text
        return response.json()["state"]

    def queue_call(self, body: dict) -> str:
        response = self.post(body)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def outcome(self, call_id: str, timeout: float = 20) -> dict:
        """Poll ``GET /calls/{id}`` until the call has an outcome (success, failure or cancelled)."""

        def finished() -> dict | None:
            response = self.get(f"/calls/{call_id}")
            assert response.status_code == 200, response.text
            return response.json() if response.json()["state"] not in ("scheduled", "pending", "started") else None

        return wait_for(finished, timeout, f"call {call_id} to finish")


@pytest.fixture(scope="module")
def gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    process = Gateway(tmp_path_factory.mktemp("gateway") / "gateway.log", DISPATCH_ALLOWED_HOSTS="127.0.0.1")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def idle_gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    queue = f"{TEST_ENV['DISPATCH_QUEUE']}-idle-{uuid.uuid4().hex[:8]}"  # cleaned up with the run's keys
    log = tmp_path_factory.mktemp("idle-gateway") / "gateway.log"
    process = Gateway(log, DISPATCH_QUEUE=queue, DISPATCH_ALLOWED_HOSTS="127.0.0.1")
    yield process
    process.stop()
    delete_queues(queue)


@pytest.fixture(scope="module")
def closed_gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    queue = f"{TEST_ENV['DISPATCH_QUEUE']}-closed-{uuid.uuid4().hex[:8]}"
    process = Gateway(tmp_path_factory.mktemp("closed-gateway") / "gateway.log", DISPATCH_QUEUE=queue)
    yield process
    process.stop()
    delete_queues(queue)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_queued_call_succeeds_with_the_retval(worker, gateway, endpoint, method):
    response = gateway.post({"url": endpoint.url("/multiply"), "method": method, "params": {"x": 6, "y": 7}})
    assert response.status_code == 202, response.text
    call_id = response.json()["id"]
    assert response.json()["status_url"] == response.headers["Location"] == f"/calls/{call_id}"
    assert gateway.outcome(call_id) == {"id": call_id, "state": "success", "result": 42}


def test_call_id_is_the_idempotency_key_the_endpoint_sees(worker, gateway, python_endpoint):
    call_id = gateway.queue_call({"url": python_endpoint.url("/echo"), "params": {"a": ["x", "y"]}})
    seen = gateway.outcome(call_id)["result"]
    assert seen["headers"]["idempotency-key"] == call_id
    assert seen["query"] == {"a": ["x", "y"]}


def test_remote_failure_reports_the_error_class_and_reason(worker, gateway, endpoint):
    call_id = gateway.queue_call({"url": endpoint.url("/fail"), "params": {"reason": "division by zero"}})
    assert gateway.outcome(call_id) == {
        "id": call_id,
        "state": "failure",
        "error": {"type": "RemoteExecuteError", "message": "division by zero"},
    }


def test_a_shaped_call_reaches_the_node_endpoint_as_asked(worker, gateway, node_endpoint):
    call = {
        "url": node_endpoint.url("/echo"),
        "method": "PATCH",
        "headers": {"X-Tenant": "acme"},
        "body": "json",
        "params": {"order": {"id": 7, "lines": [1, 2]}},
    }
    seen = gateway.outcome(gateway.queue_call(call))["result"]
    assert (seen["method"], seen["headers"]["x-tenant"]) == ("PATCH", "acme")
    assert seen["json"] == {"order": {"id": 7, "lines": [1, 2]}}


def test_call_options_reach_the_worker(worker, gateway, python_endpoint):
    key = unique_key()
    body = {"url": python_endpoint.url("/status/503"), "params": {"key": key}, "options": {"max_attempts": 1}}
    error = gateway.outcome(gateway.queue_call(body))["error"]
    assert error["type"] == "TransportError" and "1 attempt" in error["message"]
    assert python_endpoint.hits(key) == 1


def test_a_call_not_yet_performed_is_pending(idle_gateway, python_endpoint):
    before = queue_depth(idle_gateway.queue)
    call_id = idle_gateway.queue_call({"url": python_endpoint.url("/multiply"), "params": {"x": 1, "y": 2}})
    assert queue_depth(idle_gateway.queue) == before + 1
    assert idle_gateway.get(f"/calls/{call_id}").json() == {"id": call_id, "state": "pending"}


def test_unknown_id_is_404_and_a_malformed_one_422(gateway):
    missing = gateway.get(f"/calls/{uuid.uuid4()}")
    assert missing.status_code == 404 and "no call" in missing.json()["detail"]
    assert gateway.get("/calls/not-a-uuid").status_code == 422


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef", TOKEN[:-1]])
def test_missing_or_wrong_token_is_401_with_a_challenge(gateway, python_endpoint, token):
    for response in (
        gateway.post({"url": python_endpoint.url("/multiply")}, token=token),
        gateway.get(f"/calls/{uuid.uuid4()}", token=token),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_listed_token_is_accepted_for_rotation(gateway):
    assert gateway.get(f"/calls/{uuid.uuid4()}", token=ROTATED_TOKEN).status_code == 404


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://10.0.0.1/multiply", "a private address"),
        ("http://192.168.1.1:8080/admin", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud-metadata address"),
        ("http://[fd00::1]/", "a unique-local address"),
        ("http://127.0.0.2/", "a loopback address"),  # only 127.0.0.1 is allowed
    ],
)
def test_private_destination_is_refused_and_nothing_is_queued(idle_gateway, url, rule):
    # The policy refuses IP literals without any traffic: nothing is sent to these addresses.
    before = queue_depth(idle_gateway.queue)
    response = idle_gateway.post({"url": url})
    assert response.status_code == 403, response.text
    assert rule in response.json()["detail"] and "DISPATCH_ALLOWED_HOSTS" in response.json()["detail"]
    assert queue_depth(idle_gateway.queue) == before


def test_loopback_is_refused_unless_allowed(closed_gateway, python_endpoint):
    response = closed_gateway.post({"url": python_endpoint.url("/multiply")})
    assert response.status_code == 403 and "a loopback address" in response.json()["detail"]


def test_unresolvable_host_is_422(idle_gateway):
    before = queue_depth(idle_gateway.queue)
    response = idle_gateway.post({"url": "http://no-such-host.invalid/multiply"})
    assert response.status_code == 422, response.text
    assert "does not resolve" in response.json()["detail"][0]["msg"]
    assert queue_depth(idle_gateway.queue) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"method": "GET"}, "Field required"),
        ({"url": "ftp://127.0.0.1/x"}, "is not an absolute http:// or https:// URL"),
        ({"url": "http://127.0.0.1/a b"}, "percent-encode it"),
        ({"url": "{ok}", "method": "TRACE"}, "method 'TRACE' is not supported"),
        ({"url": "{ok}", "params": {"a": {"b": 1}}}, "parameter 'a' has a value of type dict"),
        ({"url": "{ok}", "headers": {"Host": "evil"}}, "'Host' is set by the worker"),
        ({"url": "{ok}", "headers": {"X-A": "1\r\nX-B: 2"}}, "CR, LF or NUL"),
        ({"url": "{ok}", "headers": {"X-A": 1}}, "must have a string value"),
        ({"url": "{ok}", "headers": {"Webhook-Id": "forged"}}, "set by the worker"),
        ({"url": "{ok}", "body": "xml"}, "Input should be 'form' or 'json'"),
        ({"url": "{ok}", "options": {"retries": 3}}, "unknown call option 'retries'"),
        ({"url": "{ok}", "options": {"timeout": -1}}, "must be a positive number of seconds"),
        ({"url": "{ok}", "priority": 1}, "Extra inputs are not permitted"),
        (["{ok}"], "valid dictionary"),
    ],
)
def test_invalid_body_is_422_with_the_reason_and_nothing_is_queued(idle_gateway, python_endpoint, body, message):
    ok = python_endpoint.url("/multiply")
    body = {k: ok if v == "{ok}" else v for k, v in body.items()} if isinstance(body, dict) else [ok]
    before = queue_depth(idle_gateway.queue)
    response = idle_gateway.post(body)
    assert response.status_code == 422, response.text
    assert any(message in error["msg"] for error in response.json()["detail"]), response.text
    assert queue_depth(idle_gateway.queue) == before


def test_a_delayed_call_is_scheduled_then_performed(worker, gateway, python_endpoint):
    started = time.monotonic()
    response = gateway.post({"url": python_endpoint.url("/multiply"), "params": {"x": 6, "y": 7}, "delay": 2})
    assert response.status_code == 202, response.text
    call_id = response.json()["id"]
    assert gateway.get(f"/calls/{call_id}").json() == {"id": call_id, "state": "scheduled"}
    assert gateway.outcome(call_id, timeout=30) == {"id": call_id, "state": "success", "result": 42}
    assert time.monotonic() - started >= 2


def test_a_cancelled_call_is_never_sent(worker, gateway, python_endpoint):
    key = unique_key()
    call_id = gateway.queue_call(
        {"url": python_endpoint.url("/multiply"), "params": {"x": 1, "y": 1, "key": key}, "delay": 2}
    )
    response = gateway.delete(f"/calls/{call_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": call_id, "state": "cancelled"}
    assert gateway.get(f"/calls/{call_id}").json() == {"id": call_id, "state": "cancelled"}
    assert gateway.delete(f"/calls/{call_id}").json() == {"id": call_id, "state": "cancelled"}  # idempotent
    skipped = f"call {call_id} GET {python_endpoint.url('/multiply')}"
    wait_for(
        lambda: any(skipped in line and "cancelled: not sent" in line for line in worker.log().splitlines()),
        30,
        "the skip",
    )
    assert python_endpoint.hits(key) == 0
    assert gateway.state(call_id) == "cancelled"


def test_a_queued_call_no_worker_took_can_be_cancelled(idle_gateway, python_endpoint):
    call_id = idle_gateway.queue_call({"url": python_endpoint.url("/multiply"), "params": {"x": 1, "y": 2}})
    assert idle_gateway.state(call_id) == "pending"
    assert idle_gateway.delete(f"/calls/{call_id}").status_code == 200
    assert idle_gateway.state(call_id) == "cancelled"


def test_a_waiting_call_that_never_reached_the_wire_is_cancelled_as_res_cancel_would(idle_gateway, python_endpoint):
    from dispatch.results import results_backend
    from dispatch.settings import Settings

    call_id = idle_gateway.queue_call({"url": python_endpoint.url("/multiply"), "params": {"x": 1, "y": 2}})
    states = results_backend(Settings.from_env(TEST_ENV)).states
    assert states.claim(call_id, "a-worker", 60_000) == "claimed"
    states.wait(call_id, 60_000, [{"at": "t", "status_code": None, "error": "TransportError", "wire": False}])
    assert idle_gateway.state(call_id) == "started"  # waiting for its next delivery: shown as started
    response = idle_gateway.delete(f"/calls/{call_id}")  # the connection was refused: nothing reached the wire
    assert response.status_code == 200, response.text
    assert idle_gateway.state(call_id) == "cancelled"


def test_a_call_in_progress_is_started_and_cannot_be_cancelled(worker, gateway, python_endpoint):
    key = unique_key()
    call_id = gateway.queue_call({"url": python_endpoint.url("/slow"), "params": {"ms": 1500, "key": key}})
    wait_for(lambda: python_endpoint.hits(key) == 1, 30, "the call to be in progress")
    assert gateway.state(call_id) == "started"
    response = gateway.delete(f"/calls/{call_id}")
    assert response.status_code == 409, response.text
    assert "already started" in response.json()["detail"]
    assert gateway.outcome(call_id)["state"] == "success"


def test_a_finished_call_cannot_be_cancelled(worker, gateway, python_endpoint):
    call_id = gateway.queue_call({"url": python_endpoint.url("/multiply"), "params": {"x": 3, "y": 3}})
    assert gateway.outcome(call_id) == {"id": call_id, "state": "success", "result": 9}
    response = gateway.delete(f"/calls/{call_id}")
    assert response.status_code == 409, response.text
    assert "already finished (success)" in response.json()["detail"]
    assert gateway.get(f"/calls/{call_id}").json()["state"] == "success"


def test_cancelling_an_unknown_id_is_404_and_a_malformed_one_422(gateway):
    missing = gateway.delete(f"/calls/{uuid.uuid4()}")
    assert missing.status_code == 404 and "no call" in missing.json()["detail"]
    assert gateway.delete("/calls/not-a-uuid").status_code == 422
    assert gateway.delete(f"/calls/{uuid.uuid4()}", token=None).status_code == 401


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        (-1, "greater than or equal to 0"),
        (MAX_DELAY + 1, f"less than or equal to {MAX_DELAY}"),
        ("soon", "delay must be a number of seconds"),
        (True, "delay must be a number of seconds"),
        (None, "delay must be a number of seconds"),
    ],
)
def test_a_delay_out_of_range_is_422_and_nothing_is_queued(idle_gateway, python_endpoint, delay, message):
    before = queue_depth(idle_gateway.queue)
    response = idle_gateway.post({"url": python_endpoint.url("/multiply"), "delay": delay})
    assert response.status_code == 422, response.text
    assert any(message in error["msg"] for error in response.json()["detail"]), response.text
    assert queue_depth(idle_gateway.queue) == before


def test_broker_down_is_503_with_retry_after(vhost, redis_db, python_endpoint, tmp_path):
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/{vhost}"  # nothing listens there
    broken = Gateway(
        tmp_path / "gateway.log",
        DISPATCH_BROKER_URL=nowhere,
        DISPATCH_SEND_TIMEOUT="0.5",
        DISPATCH_ALLOWED_HOSTS="127.0.0.1",
    )
    try:
        response = broken.post({"url": python_endpoint.url("/multiply")})
    finally:
        broken.stop()
    assert response.status_code == 503, response.text
    assert "RabbitMQ unreachable" in response.json()["detail"] and response.headers["Retry-After"]


def test_results_store_down_is_503_naming_the_redis_and_the_fix_never_its_password(vhost, tmp_path):
    password = "redis-pass-4e1f9a"
    broken = Gateway(
        tmp_path / "gateway.log",
        DISPATCH_RESULTS_URL=f"redis://:{password}@127.0.0.1:{free_port()}/9",  # nothing listens there
        DISPATCH_ALLOWED_HOSTS="127.0.0.1",
    )
    call_path = f"/calls/{uuid.uuid4()}"
    try:
        answers = [
            broken.get(call_path),
            broken.get(call_path + "/attempts"),
            broken.delete(call_path),
            broken.post({"url": "http://127.0.0.1:8000/multiply", "delay": 5}),
        ]
    finally:
        broken.stop()
    for response in answers:
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert "cannot use the results store" in detail and "127.0.0.1" in detail, detail
        assert password not in response.text and response.headers["Retry-After"]
    assert "nothing was queued" in answers[-1].json()["detail"]


def test_openapi_document_describes_the_api_and_its_bearer_auth(gateway):
    document = requests.get(gateway.base + "/openapi.json", timeout=10).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the tokens in DISPATCH_GATEWAY_TOKEN.",
    }
    assert set(document["paths"]) == {"/calls", "/calls/{call_id}", "/calls/{call_id}/attempts", "/tasks/{actor_name}"}
    attempts = document["paths"]["/calls/{call_id}/attempts"]["get"]
    assert attempts["security"] == [{"HTTPBearer": []}]
    assert {"200", "401", "404"} <= set(attempts["responses"])
    post = document["paths"]["/calls"]["post"]
    assert post["security"] == [{"HTTPBearer": []}]
    assert {"202", "401", "403", "422", "503"} <= set(post["responses"])
    new_call = document["components"]["schemas"]["NewCall"]["properties"]
    assert new_call["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE"]
    assert new_call["body"]["enum"] == ["form", "json"]
    assert "destinations file" in new_call["headers"]["description"]
    delay = document["components"]["schemas"]["NewCall"]["properties"]["delay"]
    assert (delay["minimum"], delay["maximum"]) == (0, MAX_DELAY)
    delete = document["paths"]["/calls/{call_id}"]["delete"]
    assert delete["security"] == [{"HTTPBearer": []}]
    assert {"200", "401", "404", "409", "503"} <= set(delete["responses"])
    states = {
        schema["properties"]["state"].get("const") or schema["properties"]["state"]["enum"][0]
        for schema in document["components"]["schemas"].values()
        if "state" in schema.get("properties", {})
    }
    assert {"scheduled", "pending", "started", "cancelled", "success", "failure"} == states
    task = document["paths"]["/tasks/{actor_name}"]["post"]
    assert {"202", "401", "404", "413", "422", "503"} <= set(task["responses"])

"""Calls shaped (method, headers, JSON body), a destinations file, and a subclass of HttpDispatch.

All against real workers, RabbitMQ and Redis; the endpoint that must see
the method, headers and JSON body is the Node one.
"""

from __future__ import annotations

import json

import pytest

from dispatch import URL
from dispatch.signing import generate_secret, verify

from .support import QUEUE, Worker, delete_queues, dispatch, queue_depth, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_the_node_endpoint_sees_the_method_headers_and_json_body(worker, node_endpoint, method):
    url = URL(node_endpoint.url("/echo"), method, headers={"X-Tenant": "acme", "Accept-Language": "fr"}, body="json")
    seen = url.send(order={"id": 7, "lines": [1, 2.5]}, paid=True, note=None).get(timeout=30)
    assert seen["method"] == method
    assert seen["headers"]["x-tenant"] == "acme"
    assert seen["headers"]["accept-language"] == "fr"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["json"] == {"order": {"id": 7, "lines": [1, 2.5]}, "paid": True, "note": None}


def test_a_form_put_and_a_get_with_headers(worker, node_endpoint):
    seen = URL(node_endpoint.url("/echo"), "PUT").send(a="1", b=["x", "y"]).get(timeout=30)
    assert (seen["method"], seen["form"], seen["headers"]["content-type"]) == (
        "PUT",
        {"a": "1", "b": ["x", "y"]},
        "application/x-www-form-urlencoded",
    )
    seen = URL(node_endpoint.url("/echo"), headers={"X-Trace": "t1"}, body="json").send(a=1).get(timeout=30)
    assert (seen["method"], seen["query"], seen["headers"]["x-trace"]) == ("GET", {"a": "1"}, "t1")


def test_the_signature_covers_the_json_body(make_worker, node_endpoint):
    secret = generate_secret()
    signing = make_worker(DISPATCH_SIGNING_SECRET=secret)
    res = signing.send(node_endpoint.url("/echo"), "PATCH", {"amount": 12, "tags": ["a"]}, body="json")
    seen = res.get(timeout=30)
    assert json.loads(seen["raw_body"]) == {"amount": 12, "tags": ["a"]}
    assert verify(seen["raw_body"].encode(), seen["headers"], secret)[0] == res.message_id
    with pytest.raises(Exception, match="signature"):
        verify(seen["raw_body"].replace("12", "13").encode(), seen["headers"], secret)


@pytest.mark.parametrize(
    ("shape", "params", "error"),
    [
        ({"method": "TRACE"}, {}, "method 'TRACE' is not supported"),
        ({"headers": {"Host": "evil.example"}}, {}, "'Host' is set by the worker"),
        ({"headers": {"X-A": "1\r\nX-Injected: 1"}}, {}, "CR, LF or NUL"),
        ({"headers": {"Webhook-Signature": "v1,forged"}}, {}, "set by the worker"),
        ({"headers": {"bad name": "1"}}, {}, "not an HTTP token"),
        ({"body": "xml"}, {}, "body='xml' is invalid"),
        ({"method": "POST", "body": "json"}, {"x": float("nan")}, "cannot be sent as a JSON body"),
        ({"method": "POST"}, {"x": {"nested": 1}}, "cannot be sent"),  # a form has no nesting
    ],
)
def test_a_bad_shape_fails_in_the_caller_before_anything_is_queued(vhost, node_endpoint, shape, params, error):
    queued_before = queue_depth(QUEUE)
    with pytest.raises(ValueError, match=error):
        URL(node_endpoint.url("/echo"), **shape).send(**params)
    assert queue_depth(QUEUE) == queued_before


# -- the destinations file ------------------------------------------------------------------


def test_credentials_from_the_destinations_file_reach_the_host_but_never_the_queue(
    make_worker, node_endpoint, python_endpoint, tmp_path
):
    secret = generate_secret()
    destinations = tmp_path / "destinations.toml"
    destinations.write_text(
        f'[destinations."127.0.0.1:{node_endpoint.port}"]\n'
        'headers = { Authorization = "Bearer ${BILLING_TOKEN}", X-Tenant = "file" }\n'
        'signing_secret = "${BILLING_SECRET}"\n'
        "[defaults]\n"
        'headers = { X-Default = "yes" }\n'
    )
    configured = make_worker(DISPATCH_DESTINATIONS=str(destinations), BILLING_TOKEN="tok-123", BILLING_SECRET=secret)
    message = configured.send(node_endpoint.url("/echo"), "POST", {"a": "1"}, headers={"X-Tenant": "call"})
    assert b"tok-123" not in message.encode() and secret.encode() not in message.encode()
    seen = message.get(timeout=30)
    assert seen["headers"]["authorization"] == "Bearer tok-123"
    assert seen["headers"]["x-tenant"] == "file"  # the operator's word wins over the call's
    assert "x-default" not in seen["headers"]  # a listed host inherits no credentials from [defaults]
    verify(seen["raw_body"].encode(), seen["headers"], secret)  # signed with this host's own secret
    other = configured.send(python_endpoint.url("/echo")).get(timeout=30)
    assert other["headers"]["x-default"] == "yes"
    assert "authorization" not in other["headers"]


def test_a_bad_destinations_file_stops_the_worker_and_the_gateway_naming_the_line(vhost, tmp_path):
    destinations = tmp_path / "destinations.toml"
    destinations.write_text('[destinations."api.example.com"]\nmax_concurrency = 4\nrate = "fast"\n')
    env = {"DISPATCH_DESTINATIONS": str(destinations), "DISPATCH_QUEUE": f"{QUEUE}-badfile"}
    log = tmp_path / "worker.log"
    worker = Worker(log, env)
    try:
        assert worker.process.wait(60) != 0
    finally:
        worker.stop()
    assert f"{destinations} line 3: rate" in log.read_text()
    gateway = dispatch("gateway", "--port", "1", env={**env, "DISPATCH_GATEWAY_TOKEN": "t" * 32})
    assert gateway.returncode != 0
    assert f"{destinations} line 3: rate" in gateway.stderr


# -- your own HTTP task ---------------------------------------------------------------------


@pytest.fixture
def billing_worker(vhost, redis_db, tmp_path):
    """``dramatiq dispatch.tasks tests.integration.billing_app``, as the contract says to run a subclass."""
    worker = Worker(tmp_path / "billing.log", modules=["dispatch.tasks", "tests.integration.billing_app"], threads=2)
    yield worker
    worker.stop()
    delete_queues(f"{QUEUE}-billing")


def test_a_subclass_runs_on_its_own_queue_with_its_hooks(billing_worker, node_endpoint):
    from tests.integration.billing_app import billing

    assert billing.queue_name == f"{QUEUE}-billing" and billing.actor_name == "Billing"
    res = URL(node_endpoint.url("/echo"), "POST", dispatcher=billing, body="json").send(x=1)
    assert res.queue_name == f"{QUEUE}-billing"
    outcome = res.get(timeout=60)
    assert outcome["status"] == 200 and outcome["type"] == "application/json"
    assert outcome["retval"]["headers"]["x-tenant"] == "acme"  # prepare() ran on the wire request
    assert outcome["retval"]["json"] == {"x": 1}
    logged = f"call {res.message_id} POST {node_endpoint.url('/echo')} processed"
    wait_for(lambda: logged in billing_worker.log(), 10, "the call log line")
    # it inherits the rest: retries for transport errors, then the dead-letter queue
    failed = URL("http://127.0.0.1:1/refused", dispatcher=billing, max_attempts=2).send()
    with pytest.raises(Exception, match="failed after 2 attempt"):
        failed.get(timeout=60)
    wait_for(lambda: queue_depth(f"{QUEUE}-billing.XQ") >= 1, 10, "the dead letter on the subclass's own queue")

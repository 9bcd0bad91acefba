"""Bulk sends: ``URL.map`` and ``http_dispatch.send_many`` with pipelined publisher confirms.

The promise is the same as ``send()``'s -- a handle means RabbitMQ confirmed
the call -- for many calls at once, including when RabbitMQ refuses some or
drops the connection half-way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pika
import pytest

from dispatch import URL, RemoteExecuteError

from .support import (
    QUEUE,
    TEST_ENV,
    VHOST,
    delete_queues,
    length_limited_queue,
    queue_depth,
    rabbitmqctl,
    unique_key,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_map_returns_one_confirmed_handle_per_call_in_order(worker, endpoint):
    handles = URL(endpoint.url("/multiply")).map({"x": i, "y": 3} for i in range(200))
    assert len({h.message_id for h in handles}) == 200
    assert [h.get(timeout=60) for h in handles] == [i * 3 for i in range(200)]


def test_map_keeps_the_urls_query_method_and_options(worker, python_endpoint):
    url = URL(python_endpoint.url("/echo?fixed=1"), method="POST", max_attempts=1)
    echoed = [h.get(timeout=30) for h in url.map([{"n": 1}, {"n": 2}])]
    assert [e["method"] for e in echoed] == ["POST", "POST"]
    assert [(e["query"], e["form"]) for e in echoed] == [({"fixed": "1"}, {"n": "1"}), ({"fixed": "1"}, {"n": "2"})]


def test_send_many_mixes_urls_and_outcomes(worker, python_endpoint):
    from dispatch.tasks import http_dispatch

    ok, failing = http_dispatch.send_many(
        [(python_endpoint.url("/multiply"), "GET", {"x": 6, "y": 7}), (python_endpoint.url("/fail"), "POST")]
    )
    assert ok.get(timeout=30) == 42
    with pytest.raises(RemoteExecuteError):
        failing.get(timeout=30)


def test_one_bad_call_fails_the_batch_before_anything_is_enqueued():
    before = queue_depth(QUEUE)
    calls = [{"x": 1}, {"x": 2}, {"x": object()}]
    with pytest.raises(ValueError, match="'x' has a value of type object"):
        URL("http://127.0.0.1:9/never").map(calls)
    assert queue_depth(QUEUE) == before


SEND_MANY = """
import json, sys
from dispatch import URL
from dispatch.publisher import PublishRefused
try:
    handles = URL("http://127.0.0.1:9/never").map({"i": i} for i in range(int(sys.argv[1])))
    print(json.dumps({"sent": [h.message_id for h in handles]}))
except PublishRefused as exc:
    print(json.dumps({"refused": [m.message_id for m in exc.refused], "sent": [m.message_id for m in exc.sent],
                      "error": str(exc)}))
"""


def run_map(queue: str, calls: int, timeout: float = 120) -> subprocess.Popen:
    """``URL.map`` of ``calls`` calls in a process of its own, publishing to ``queue``."""
    return subprocess.Popen(
        [sys.executable, "-c", SEND_MANY, str(calls)],
        env={**os.environ, "DISPATCH_QUEUE": queue},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def drain(queue: str) -> list[str]:
    """Every message id waiting in ``queue``, removing them."""
    connection = pika.BlockingConnection(pika.URLParameters(TEST_ENV["DISPATCH_BROKER_URL"]))
    channel = connection.channel()
    ids = []
    while True:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        ids.append(json.loads(body)["message_id"])
    connection.close()
    return ids


def test_a_partly_refused_batch_says_which_calls_were_sent():
    with length_limited_queue(f"{QUEUE}-limited-{unique_key()[:8]}", max_length=10) as queue:
        out, err = run_map(queue, 30).communicate(timeout=60)
        report = json.loads(out)
        assert len(report["sent"]) == 10 and len(report["refused"]) == 20, err
        assert "refused 20 of 30 calls" in report["error"]
        assert sorted(drain(queue)) == sorted(report["sent"])  # exactly the confirmed ones are queued


def test_a_connection_dropped_mid_batch_loses_no_call():
    queue = f"{QUEUE}-dropped-{unique_key()[:8]}"
    calls = 40_000
    sender = run_map(queue, calls)
    try:
        wait_for(lambda: queue_depth(queue) >= 2_000, 60, "the batch under way")
        closed = rabbitmqctl("close_all_connections", "-p", VHOST, "test: connection dropped mid-batch")
        assert closed.returncode == 0, closed.stderr
        out, err = sender.communicate(timeout=120)
        assert "lost the RabbitMQ connection" in err, err  # the drop did land mid-batch
        sent = json.loads(out)["sent"]
        queued = drain(queue)
        assert len(sent) == calls
        assert set(queued) == set(sent)  # lost: 0; republished unconfirmed calls may be queued twice
    finally:
        sender.kill()
        delete_queues(queue)


def test_a_call_that_stays_unroutable_is_refused_not_reported_sent(monkeypatch):
    from dispatch.publisher import PublishRefused, publish_many
    from dispatch.tasks import http_dispatch

    broker = http_dispatch.broker
    nowhere = f"{QUEUE}-never-declared-{unique_key()[:8]}"
    monkeypatch.setattr(broker, "declare_queue", lambda *args, **kwargs: None)  # the queue never comes back
    message = http_dispatch.message("http://127.0.0.1:9/never").copy(queue_name=nowhere)
    with pytest.raises(PublishRefused, match="refused 1 of 1 calls") as refused:
        publish_many(broker, [message], patience=5)
    assert [m.message_id for m in refused.value.refused] == [message.message_id]
    assert refused.value.sent == []

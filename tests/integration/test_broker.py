"""What RabbitMQ itself sees: durable queues, dead letters, publisher confirms."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dispatch import URL, RemoteExecuteError

from .support import QUEUE, VHOST, length_limited_queue, queue_depth, rabbitmqctl, unique_key, wait_for

pytestmark = pytest.mark.integration


def test_queue_and_companions_are_durable_and_dead_letter_to_xq(worker):
    listed = rabbitmqctl("list_queues", "-p", VHOST, "name", "durable", "arguments", "--formatter", "json")
    queues = {q["name"]: q for q in json.loads(listed.stdout)}
    for name in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
        assert queues[name]["durable"] is True, name
    arguments = {name: value for name, _type, value in queues[QUEUE]["arguments"]}
    assert arguments["x-dead-letter-routing-key"] == f"{QUEUE}.XQ"


def test_a_failed_call_is_kept_in_the_dead_letter_queue(worker, python_endpoint):
    before = queue_depth(f"{QUEUE}.XQ")
    with pytest.raises(RemoteExecuteError):
        URL(python_endpoint.url("/fail")).send().get(timeout=10)
    wait_for(lambda: queue_depth(f"{QUEUE}.XQ") == before + 1, 10, "the dead letter")


def test_send_uses_publisher_confirms(worker, python_endpoint):
    from dispatch.actor import default_dispatcher

    URL(python_endpoint.url("/health")).send().get(timeout=10)
    broker = default_dispatcher().broker  # the one send() used (tests may have swapped a stub in and out before)
    assert broker.confirm_delivery is True
    assert broker.channel._delivery_confirmation is True


def test_a_publish_rabbitmq_refuses_raises_in_the_caller():
    # A queue that rejects every publish: with confirms on, send() must raise, not return a handle.
    script = """
from dispatch import URL
try:
    res = URL("http://127.0.0.1:9/never").send()
    print("returned a handle", res.message_id)
except Exception as exc:
    print("raised", type(exc).__name__)
"""
    with length_limited_queue(f"rejecting-{unique_key()[:8]}", max_length=0) as queue:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "DISPATCH_QUEUE": queue},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.startswith("raised PublishRefused"), done.stdout + done.stderr

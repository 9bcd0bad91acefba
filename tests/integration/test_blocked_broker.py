"""Waits that end: every publish gives up while RabbitMQ blocks publishers (issue 20.4).

A real memory alarm is raised (``rabbitmqctl set_vm_memory_high_watermark absolute 1``) and always
restored to the setting read before, even when a test fails.  The alarm blocks every publishing
connection on the node, other test runs' included, so each window is a few seconds long, and this file
runs in the serial ``make test`` like the rest.

Under the alarm ``send()``, ``send_many()``, ``dispatch call`` and the gateway's ``POST /calls`` end within
``DISPATCH_SEND_TIMEOUT`` (3 s here) with the package's PublishBlocked naming the alarm and the fix.  What
they handed over unconfirmed, RabbitMQ queues when the alarm clears: the gateway withdraws (cancels) its
call and says so, so no worker performs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .support import QUEUE, ROOT, Worker, delete_queues, queue_depth, rabbitmqctl, unique_key, wait_for
from .test_gateway import Gateway

pytestmark = pytest.mark.integration

ADVICE = (
    "RabbitMQ blocks publishers: a memory or disk alarm (rabbitmqctl status / the management UI); "
    "free memory/disk or raise the watermark"
)

CLIENTS = """
from dispatch import URL
for send in (lambda: URL("http://127.0.0.1:9/x").send(x=1), lambda: URL("http://127.0.0.1:9/x").map([{"x": 1}] * 5)):
    try:
        send()
        print("returned handles")
    except Exception as exc:
        print(type(exc).__name__, len(getattr(exc, "message_ids", [])), exc, flush=True)
"""


def node_status() -> dict:
    done = rabbitmqctl("status", "--formatter", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def watermark_arguments(setting: dict) -> list[str]:
    """``rabbitmqctl set_vm_memory_high_watermark`` arguments restoring ``setting`` (from ``status``)."""
    if "relative" in setting:
        return [str(setting["relative"])]
    if setting.get("absolute", 0) < 2**20:  # an alarm a crashed run left behind: back to RabbitMQ's default
        return ["0.4"]
    return ["absolute", str(setting["absolute"])]


@contextmanager
def memory_alarm() -> Iterator[None]:
    """A memory alarm on the node for the ``with`` block; the watermark read before is restored whatever happens."""
    restore = watermark_arguments(node_status()["vm_memory_high_watermark_setting"])
    try:
        raised = rabbitmqctl("set_vm_memory_high_watermark", "absolute", "1")
        assert raised.returncode == 0, raised.stderr
        wait_for(lambda: node_status()["alarms"], 15, "RabbitMQ to raise its memory alarm")
        yield
    finally:
        rabbitmqctl("set_vm_memory_high_watermark", *restore)
        wait_for(lambda: not node_status()["alarms"], 30, "RabbitMQ to clear its memory alarm")


@pytest.fixture
def queue(vhost) -> Iterator[str]:
    name = f"{QUEUE}-blocked-{uuid.uuid4().hex[:8]}"
    yield name
    delete_queues(name)


def test_send_send_many_and_the_cli_end_with_publish_blocked_while_rabbitmq_blocks_publishers(queue):
    env = {**os.environ, "DISPATCH_SEND_TIMEOUT": "3", "DISPATCH_QUEUE": queue}
    with memory_alarm():
        clients = subprocess.Popen(
            [sys.executable, "-c", CLIENTS], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        cli = subprocess.Popen(
            [sys.executable, "-m", "dispatch.cli", "call", "http://127.0.0.1:9/x"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        clients_out, clients_err = clients.communicate(timeout=60)  # ends: it does not wait for the alarm
        cli_out, cli_err = cli.communicate(timeout=60)
    single, many = clients_out.splitlines()
    assert single.startswith("PublishBlocked 1 " + ADVICE), clients_out + clients_err
    assert "was not confirmed within" in single and "may queue it when the alarm clears" in single
    assert many.startswith("PublishBlocked 5 " + ADVICE), clients_out + clients_err
    assert "5 of 5 calls were not confirmed" in many
    assert cli.returncode == 1, cli_out + cli_err
    assert ADVICE in cli_err, cli_err


def test_the_gateway_answers_503_within_its_timeout_and_its_call_never_runs(queue, redis_db, python_endpoint, tmp_path):
    key = unique_key()
    env = {"DISPATCH_QUEUE": queue, "DISPATCH_SEND_TIMEOUT": "3", "DISPATCH_ALLOWED_HOSTS": "127.0.0.1"}
    gateway = Gateway(tmp_path / "gateway.log", **env)
    worker = Worker(tmp_path / "worker.log", env=env)
    call = {"url": python_endpoint.url("/multiply"), "params": {"x": 6, "y": 7, "key": key}}
    try:
        assert gateway.outcome(gateway.queue_call(call))["result"] == 42  # the worker is up, the endpoint counts
        with memory_alarm():
            response = gateway.post(call)  # the client's own timeout is 30 s: the gateway must answer first
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert detail.startswith(ADVICE) and "was withdrawn (cancelled)" in detail, detail
        call_id = re.search(r"Call ([0-9a-f-]{36}) was withdrawn", detail).group(1)

        wait_for(lambda: queue_depth(queue) == 0, 30, "the worker to take what RabbitMQ queued after the alarm")
        assert gateway.state(call_id) == "cancelled"
        assert gateway.outcome(gateway.queue_call(call))["result"] == 42  # publishing works again
        assert python_endpoint.hits(key) == 2  # the call before the alarm and the one after, not the withdrawn one
    finally:
        worker.stop()
        gateway.stop()

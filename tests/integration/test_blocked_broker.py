"""Waits that end: every publish gives up while RabbitMQ blocks publishers (issue 20.4).

A real memory alarm is raised (``rabbitmqctl set_vm_memory_high_watermark absolute 1``) and always
restored to the setting read before, even when a test fails.  The alarm blocks every publishing
connection on the node, other test runs' included, so each window is a few seconds long, and this file
runs in the serial ``make test`` like the rest.

Under the alarm ``send()``, ``send_many()``, ``dispatch call`` and the gateway's ``POST /calls`` end within
``DISPATCH_SEND_TIMEOUT`` (3 s here) with the package's PublishBlocked naming the alarm and the fix.  What
they handed over unconfirmed, RabbitMQ queues when the alarm clears: the gateway withdraws (cancels) its
call and says so, so no worker performs it.

A worker's own publishes under the alarm: a scheduled retry it cannot re-enqueue is dead-lettered, a delayed
call it cannot promote from ``.DQ`` stays there (redelivered, promoted once the alarm clears); none is acked
unperformed, none is lost.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests

from .support import (
    QUEUE,
    ROOT,
    Endpoint,
    IsolatedWorker,
    Worker,
    delete_queues,
    queue_depth,
    rabbitmqctl,
    unique_key,
    wait_for,
)
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


# Three calls to a worker's queue: A and B fail twice (503) and are scheduled again in 4 s -- A after waiting
# out a Retry-After of 4 s in its thread, B at once -- and C is sent for 4 s later.
WORKER_CALLS = """
import json, sys
from dispatch import URL
base, a, b, c = sys.argv[1:]
print(json.dumps([
    URL(base + "/flaky").send(key=a, fail=2, code=503, retry_after=4).message_id,
    URL(base + "/flaky").send(key=b, fail=2, code=503).message_id,
    URL(base + "/multiply").send_in(4, x=6, y=7, key=c).message_id,
]))
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
        withdrawn = re.search(r"Call ([0-9a-f-]{36}) was withdrawn", detail)
        assert withdrawn, detail
        call_id = withdrawn.group(1)

        wait_for(lambda: queue_depth(queue) == 0, 30, "the worker to take what RabbitMQ queued after the alarm")
        assert gateway.state(call_id) == "cancelled"
        assert gateway.outcome(gateway.queue_call(call))["result"] == 42  # publishing works again
        assert python_endpoint.hits(key) == 2  # the call before the alarm and the one after, not the withdrawn one
    finally:
        worker.stop()
        gateway.stop()


def test_a_worker_under_an_alarm_acks_only_what_it_performed_or_dead_lettered(
    make_worker: Callable[..., IsolatedWorker], python_endpoint: Endpoint
) -> None:
    """While RabbitMQ blocks publishers a worker's own publishes give up after DISPATCH_SEND_TIMEOUT (2 s).

    A's scheduled retry falls in the alarm: its re-enqueue is not confirmed, so A is dead-lettered (kept,
    replayable), not acked.  B's scheduled delivery and C (send_in) wait on ``.DQ`` and come due in the alarm:
    their promotion is not confirmed, so the ``.DQ`` consumer starts afresh, RabbitMQ redelivers them, and they
    are performed once the alarm clears.  Every request carries its call's Idempotency-Key: a copy RabbitMQ held
    and queued late is a duplicate within at-least-once, never a call of its own.
    """
    worker = make_worker(DISPATCH_SEND_TIMEOUT="2", DISPATCH_MAX_ATTEMPTS="2", DISPATCH_RETRY_SCHEDULE="4")
    env = {**os.environ, "DISPATCH_QUEUE": worker.queue}
    a, b, c = keys = [unique_key() for _ in range(3)]
    sent = subprocess.run(
        [sys.executable, "-c", WORKER_CALLS, python_endpoint.base, *keys],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    ids = dict(zip(keys, json.loads(sent.stdout), strict=True))
    wait_for(lambda: python_endpoint.hits(a) == 1 and python_endpoint.hits(b) == 2, 30, "A's and B's first 503s")
    time.sleep(0.3)  # B's scheduled delivery confirmed on .DQ
    with memory_alarm():  # A's second attempt, B's and C's promotions come in the next 4 s
        wait_for(
            lambda: (
                "its next delivery could not be scheduled" in worker.log() and "Consumer encountered" in worker.log()
            ),
            20,
            "A's re-enqueue and a promotion from .DQ to be blocked",
        )
    assert "Consumer encountered a connection error: " + ADVICE in worker.log()  # the .DQ consumer started afresh
    from dispatch import CallResult, TransportError

    assert CallResult.from_id(ids[b]).get(timeout=60) >= 3  # performed after the alarm (the third hit succeeds)
    assert CallResult.from_id(ids[c]).get(timeout=60) == 42
    with pytest.raises(TransportError, match="its next scheduled delivery could not be queued"):
        CallResult.from_id(ids[a]).get(timeout=30)
    wait_for(lambda: queue_depth(f"{worker.queue}.XQ") == 1, 30, "A in the dead-letter queue")
    replayed = subprocess.run(
        [sys.executable, "-m", "dispatch.cli", "dead", "replay", ids[a]],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert CallResult.from_id(ids[a]).get(timeout=60) >= 3  # nothing lost: the replay succeeds

    for key in keys:  # every request of a call was that call's: the endpoint can drop a duplicate
        seen = requests.get(f"{python_endpoint.base}/call_ids/{key}", timeout=5).json()["retval"]
        assert set(seen) == {ids[key]}, (key, seen)
    assert python_endpoint.hits(a) >= 3 and python_endpoint.hits(b) >= 3 and python_endpoint.hits(c) >= 1
    log = worker.log()
    assert "not in known tags" not in log and "unexpected error" not in log, log

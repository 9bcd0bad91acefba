"""Calls later, cancelled, and found again -- against a real worker, RabbitMQ and Redis.

The contract's second round: ``send_in``/``send_at``, ``res.cancel()``
(True only if no worker will ever send the call), ``CallResult.from_id``
from another process, ``res.state()`` and ``await res.aget()``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from dispatch import URL, CallResult
from dispatch.errors import CallCancelled

from .support import queue_depth, unique_key, wait_for

pytestmark = pytest.mark.integration


def test_send_in_is_performed_no_earlier_than_asked(worker, endpoint):
    started = time.monotonic()
    handle = URL(endpoint.url("/multiply")).send_in(2, x=6, y=7)
    assert handle.state() == "scheduled"
    assert handle.get(timeout=30) == 42
    assert time.monotonic() - started >= 2


def test_send_at_takes_an_aware_datetime(worker, python_endpoint):
    when = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert URL(python_endpoint.url("/multiply")).send_at(when, x=2, y=3).get(timeout=30) == 6


def test_a_cancelled_call_is_never_sent(worker, endpoint):
    key = unique_key()
    handle = URL(endpoint.url("/multiply")).send_in(3, x=1, y=1, key=key)
    assert CallResult.from_id(handle.message_id).cancel() is True  # from a handle made from the id alone
    with pytest.raises(CallCancelled):
        handle.get(timeout=10)
    assert handle.state() == "cancelled"
    wait_for(lambda: "cancelled: not sent" in worker.log() and handle.message_id in worker.log(), 30, "the skip")
    assert endpoint.hits(key) == 0


def test_a_call_that_already_ran_cannot_be_cancelled(worker, python_endpoint):
    handle = URL(python_endpoint.url("/multiply")).send(x=3, y=3)
    assert handle.get(timeout=30) == 9
    assert handle.cancel() is False
    assert handle.get(timeout=1) == 9


def test_a_call_in_progress_cannot_be_cancelled(worker, python_endpoint):
    key = unique_key()
    handle = URL(python_endpoint.url("/slow")).send(ms=1500, key=key)
    wait_for(lambda: python_endpoint.hits(key) == 1, 30, "the call to be in progress")
    assert handle.state() == "started"
    assert handle.cancel() is False
    assert handle.get(timeout=30) == "slow"


def test_an_outcome_is_found_again_from_another_process(worker, python_endpoint):
    handle = URL(python_endpoint.url("/multiply")).send(x=4, y=5)
    code = "import sys; from dispatch import CallResult; print(CallResult.from_id(sys.argv[1]).get(timeout=30))"
    done = subprocess.run([sys.executable, "-c", code, handle.message_id], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "20", done.stderr


def test_aget_waits_without_a_thread(worker, python_endpoint):
    async def both():
        first = URL(python_endpoint.url("/slow")).send(ms=500)
        second = URL(python_endpoint.url("/multiply")).send(x=7, y=6)
        return await asyncio.gather(first.aget(30), second.aget(30))

    assert asyncio.run(both()) == ["slow", 42]


def test_a_delay_of_days_waits_in_rabbitmq_and_can_be_cancelled(make_worker, python_endpoint):
    from dispatch.actor import default_dispatcher

    worker = make_worker()
    message = default_dispatcher().message(python_endpoint.url("/multiply"), "GET", {"x": 1, "y": 1})
    handle = default_dispatcher().broker.enqueue(message.copy(queue_name=worker.queue), delay=2 * 86400 * 1000)
    wait_for(lambda: queue_depth(f"{worker.queue}.wait.131072") == 1, 30, "two days parked in the 131072 s tier")
    assert queue_depth(f"{worker.queue}.DQ") == 0  # not held by the worker
    assert handle.cancel() is True

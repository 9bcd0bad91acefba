"""Promises that hold at the edges (CONTRACT, third round) -- against a real worker, RabbitMQ and Redis.

The call record (:mod:`dispatch.results.states`): ``cancel()`` idempotent from
any process; False for a call that reached the wire through all its scheduled
deliveries, even with a ``DISPATCH_RESULT_TTL`` shorter than the schedule; a
redelivered call whose outcome is stored is acked without calling the
endpoint; every attempt on record; and one script to claim, one to finish.
The Redis-breaking twins (``CLIENT PAUSE``) are in ``test_durability.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dispatch import URL, CallResult
from dispatch.errors import CallCancelled
from dispatch.runtime import get_runtime

from .support import TEST_ENV, unique_key, wait_for

pytestmark = pytest.mark.integration


def test_cancel_is_idempotent_from_any_process(worker, python_endpoint):
    key = unique_key()
    handle = URL(python_endpoint.url("/multiply")).send_in(30, x=1, y=1, key=key)
    assert handle.cancel() is True
    assert handle.cancel() is True  # again: still cancelled, still never sent
    code = "import sys; from dispatch import CallResult; print(CallResult.from_id(sys.argv[1]).cancel())"
    done = subprocess.run([sys.executable, "-c", code, handle.message_id], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr
    with pytest.raises(CallCancelled):
        handle.get(timeout=5)
    assert handle.state() == "cancelled"


def test_a_call_on_the_wire_is_not_cancellable_through_a_schedule_longer_than_the_ttl(make_worker, python_endpoint):
    short_lived = make_worker(DISPATCH_RESULT_TTL="2", DISPATCH_MAX_ATTEMPTS="1")
    key = unique_key()
    handle = short_lived.send(python_endpoint.url("/flaky"), params={"key": key, "fail": 1}, retry_schedule=[6])
    wait_for(lambda: python_endpoint.hits(key) == 1, 30, "the first delivery to reach the endpoint")
    time.sleep(3.5)  # past DISPATCH_RESULT_TTL, before the scheduled delivery
    assert python_endpoint.hits(key) == 1
    assert CallResult.from_id(handle.message_id).cancel() is False  # it reached the wire: it may not be cancelled
    assert handle.state() == "started"
    assert handle.get(timeout=30) == 2
    assert handle.cancel() is False  # and once it ended, for as long as its outcome is kept
    assert python_endpoint.hits(key) == 2


def test_a_redelivered_call_with_a_stored_outcome_is_acked_without_calling(worker, python_endpoint):
    from dispatch.actor import default_dispatcher

    key = unique_key()
    dispatcher = default_dispatcher()
    message = dispatcher.message(python_endpoint.url("/multiply"), "GET", {"x": 2, "y": 2, "key": key})
    assert get_runtime().call_states.finish(message.message_id, 99, 60_000) is True  # as if a lost ack came before
    dispatcher.broker.enqueue(message)
    wait_for(
        lambda: f"call {message.message_id}: its outcome is stored already" in worker.log(), 30, "the redelivery's ack"
    )
    assert python_endpoint.hits(key) == 0
    assert CallResult.from_id(message.message_id).get(timeout=5) == 99


def test_every_attempt_is_on_record_over_the_whole_life_of_a_call(worker, python_endpoint):
    key = unique_key()
    handle = URL(python_endpoint.url("/flaky"), max_attempts=2, retry_schedule=[0.3]).send(key=key, fail=3)
    assert handle.get(timeout=30) == 4  # 2 quick attempts, a scheduled delivery, 2 more
    attempts = get_runtime().call_states.attempts(handle.message_id)
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert [a["status_code"] for a in attempts] == [503, 503, 503, 200]
    assert [a["error"] is None for a in attempts] == [False, False, False, True]
    assert all(a["at"].endswith("Z") and a["duration_ms"] >= 0 and len(a["detail"]) <= 300 for a in attempts)


def test_one_script_to_claim_and_one_to_finish(worker, python_endpoint):
    """The worker's Redis round trips per call: exactly two (counted with MONITOR)."""
    db = TEST_ENV["DISPATCH_RESULTS_URL"].rsplit("/", 1)[1]
    monitor = subprocess.Popen(["redis-cli", "-n", db, "MONITOR"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        handle = URL(python_endpoint.url("/multiply")).send(x=6, y=7)
        assert handle.get(timeout=30) == 42
        time.sleep(1)
    finally:
        monitor.terminate()
    lines = monitor.communicate(timeout=10)[0].splitlines()
    ours = [line for line in lines if handle.message_id in line and "lua]" not in line]
    commands = [line.split('"')[1].lower() for line in ours]
    worker_commands = [name for name in commands if name not in ("brpoplpush", "rpoplpush", "lrange", "hget")]
    assert worker_commands == ["evalsha", "evalsha"], ours  # CLAIM, then FINISH with the attempts

"""Delivery you can trust, tested by breaking the real thing.

Workers are killed with SIGKILL and SIGTERM, RabbitMQ is restarted, endpoints
refuse, throttle and fail -- and every call must still end with its right
outcome stored.  The counts of calls lost are asserted to be zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from dispatch import URL, DestinationRefused, TransportError

from .support import QUEUE, VHOST, delete_queues, queue_depth, rabbitmqctl, send_to, unique_key, wait_for

pytestmark = pytest.mark.integration


def outcomes(handles, timeout=90):
    return [h.get(timeout=timeout) for h in handles]


# -- crashes --------------------------------------------------------------------------------------


def test_sigkill_mid_call_loses_nothing(make_worker, python_endpoint):
    crashed = make_worker(threads=4)
    key = unique_key()
    handles = [crashed.send(python_endpoint.url("/slow"), params={"ms": 800, "key": key}) for _ in range(12)]
    wait_for(lambda: python_endpoint.hits(key) >= 4, 30, "calls in flight")
    crashed.kill()

    make_worker(queue=crashed.queue, threads=8)
    assert outcomes(handles) == ["slow"] * 12  # lost: 0 of 12
    assert python_endpoint.hits(key) >= 12  # at-least-once: interrupted calls ran again


def test_sigterm_finishes_or_returns_in_flight_calls(make_worker, python_endpoint):
    stopping = make_worker(threads=2)
    key = unique_key()
    handles = [stopping.send(python_endpoint.url("/slow"), params={"ms": 700, "key": key}) for _ in range(8)]
    wait_for(lambda: python_endpoint.hits(key) >= 2, 30, "calls in flight")
    stopping.process.terminate()
    assert stopping.process.wait(60) == 0
    finished_by_first = stopping.log().count("processed: 'slow'")
    assert finished_by_first >= 2  # the calls in hand were finished, not dropped

    make_worker(queue=stopping.queue)
    assert outcomes(handles) == ["slow"] * 8  # lost: 0 of 8


# -- broker restart -------------------------------------------------------------------------------


@pytest.fixture
def restart_rabbitmq():
    """Stop RabbitMQ's app; it is always started again, even if the test fails."""

    def stop():
        assert rabbitmqctl("stop_app").returncode == 0

    def start():
        assert rabbitmqctl("start_app").returncode == 0
        rabbitmqctl("await_startup")

    try:
        yield stop, start
    finally:
        start()  # a no-op when it is already running


def test_queued_and_in_flight_calls_survive_a_broker_restart(make_worker, python_endpoint, restart_rabbitmq):
    stop, start = restart_rabbitmq
    running = make_worker(threads=4)
    key = unique_key()
    in_flight = [running.send(python_endpoint.url("/slow"), params={"ms": 600, "key": key}) for _ in range(10)]
    queued_only = f"{QUEUE}-{unique_key()[:8]}"  # no worker consumes it yet
    waiting = [send_to(queued_only, python_endpoint.url("/multiply"), params={"x": i, "y": 3}) for i in range(5)]
    wait_for(lambda: python_endpoint.hits(key) >= 1, 30, "calls in flight")

    stop()
    start()

    assert outcomes(in_flight) == ["slow"] * 10  # the running worker reconnected by itself
    make_worker(queue=queued_only)
    assert outcomes(waiting) == [i * 3 for i in range(5)]  # durable messages survived
    assert running.send(python_endpoint.url("/multiply"), params={"x": 2, "y": 2}).get(timeout=30) == 4
    delete_queues(queued_only)


def test_send_during_an_outage_waits_then_succeeds_or_raises(worker, python_endpoint, restart_rabbitmq):
    stop, start = restart_rabbitmq
    script = """
from dispatch import URL
try:
    URL("http://127.0.0.1:9/x").send()
    print("returned a handle")
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    stop()
    impatient = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DISPATCH_SEND_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert impatient.stdout.startswith("BrokerUnavailable"), impatient.stdout + impatient.stderr
    assert "was not sent" in impatient.stdout

    sent = {}
    sender = threading.Thread(
        target=lambda: sent.update(res=URL(python_endpoint.url("/multiply")).send(x=7, y=6)), daemon=True
    )
    sender.start()  # RabbitMQ is down: send() keeps trying (DISPATCH_SEND_TIMEOUT, 10 s here)
    start()
    sender.join(30)
    assert sent["res"].get(timeout=30) == 42


# -- retry schedule and Retry-After ---------------------------------------------------------------


def test_retry_schedule_total_requests_is_attempts_times_deliveries(make_worker, python_endpoint):
    scheduled = make_worker(DISPATCH_MAX_ATTEMPTS="2", DISPATCH_RETRY_SCHEDULE="0.2,0.2")
    key = unique_key()
    with pytest.raises(TransportError, match="2 attempt"):
        scheduled.send(python_endpoint.url("/status/503"), params={"key": key}).get(timeout=60)
    assert python_endpoint.hits(key) == 2 * (1 + 2)
    assert scheduled.log().count("scheduled for delivery in 0.2s") == 2


def test_scheduled_delivery_waits_as_a_delayed_message_not_a_thread(make_worker, python_endpoint):
    one_thread = make_worker(threads=1, DISPATCH_MAX_ATTEMPTS="2")
    key = unique_key()
    flaky = one_thread.send(
        python_endpoint.url("/flaky"), params={"key": key, "fail": 2}, retry_schedule=[4], max_attempts=2
    )
    wait_for(lambda: "scheduled for delivery in 4s" in one_thread.log(), 30, "the scheduled delivery")
    # The only worker thread is free while the call waits in RabbitMQ's delay queue:
    started = time.monotonic()
    assert one_thread.send(python_endpoint.url("/multiply"), params={"x": 3, "y": 3}).get(timeout=30) == 9
    assert time.monotonic() - started < 4
    assert flaky.get(timeout=30) == 3


def test_retry_after_is_honoured_as_the_minimum_wait(make_worker, python_endpoint):
    patient = make_worker(DISPATCH_MAX_ATTEMPTS="2")
    key = unique_key()
    started = time.monotonic()
    res = patient.send(python_endpoint.url("/flaky"), params={"key": key, "fail": 1, "code": 429, "retry_after": 2})
    assert res.get(timeout=30) == 2
    assert time.monotonic() - started >= 2


def test_a_long_retry_after_moves_the_call_to_its_next_delivery(make_worker, python_endpoint):
    capped = make_worker(DISPATCH_RETRY_AFTER_MAX="1", DISPATCH_RETRY_SCHEDULE="0.1")
    key = unique_key()
    res = capped.send(python_endpoint.url("/flaky"), params={"key": key, "fail": 1, "code": 503, "retry_after": 3})
    assert res.get(timeout=30) == 2
    assert python_endpoint.hits(key) == 2  # the quick attempts stopped at the long Retry-After
    assert "scheduled for delivery in 3s" in capped.log()


# -- dead letters ---------------------------------------------------------------------------------


def test_dead_letters_list_replay_and_purge(worker, python_endpoint):
    from dispatch import deadletters

    deadletters.purge()
    key = unique_key()
    # Fails 3 times (the test worker's DISPATCH_MAX_ATTEMPTS), then succeeds: a replay will work.
    recovering = URL(python_endpoint.url("/flaky")).send(key=key, fail=3)
    hopeless = URL(python_endpoint.url("/fail")).send(reason="bad input")
    with pytest.raises(TransportError):
        recovering.get(timeout=30)
    with pytest.raises(Exception, match="bad input"):
        hopeless.get(timeout=30)

    # Another test's failure may be dead-lettered a moment late on this shared queue: look at our own two.
    ours = {recovering.message_id, hopeless.message_id}

    def our_dead_letters() -> dict:
        return {letter.message_id: letter for letter in deadletters.list_dead() if letter.message_id in ours}

    by_id = wait_for(lambda: len(our_dead_letters()) == 2 and our_dead_letters(), 20, "2 dead letters")
    assert by_id[hopeless.message_id].error == "RemoteExecuteError: bad input"
    assert by_id[recovering.message_id].error.startswith("TransportError: GET")
    assert by_id[recovering.message_id].method == "GET" and "/flaky" in by_id[recovering.message_id].url
    assert all(letter.failed_at is not None for letter in by_id.values())
    assert len(our_dead_letters()) == 2  # listing removed nothing

    assert deadletters.replay([recovering.message_id]) == [recovering.message_id]
    assert recovering.get(timeout=30) == 4  # the original handle sees the new outcome
    assert list(our_dead_letters()) == [hopeless.message_id]
    assert deadletters.purge() >= 1
    assert deadletters.list_dead() == []


# -- destination policy ---------------------------------------------------------------------------


def test_deny_private_refuses_loopback_without_sending(make_worker, python_endpoint):
    guarded = make_worker(DISPATCH_DENY_PRIVATE="1")
    key = unique_key()
    for host in (f"127.0.0.1:{python_endpoint.port}", f"localhost:{python_endpoint.port}"):
        with pytest.raises(DestinationRefused, match="loopback address"):
            guarded.send(f"http://{host}/multiply", params={"x": 1, "y": 1, "key": key}).get(timeout=30)
    assert python_endpoint.hits(key) == 0  # no request was sent


def test_allowed_hosts_open_chosen_addresses_and_redirects_are_rechecked(make_worker, python_endpoint):
    guarded = make_worker(DISPATCH_DENY_PRIVATE="1", DISPATCH_ALLOWED_HOSTS="127.0.0.1/32")
    assert guarded.send(python_endpoint.url("/multiply"), params={"x": 4, "y": 5}).get(timeout=30) == 20
    elsewhere = f"http://127.0.0.2:{python_endpoint.port}/multiply?x=1&y=1"
    with pytest.raises(DestinationRefused, match=r"127\.0\.0\.2"):
        guarded.send(python_endpoint.url("/redirect"), params={"to": elsewhere}).get(timeout=30)


# -- scale out --------------------------------------------------------------------------------------


def test_quorum_queues_keep_dead_letters_and_delays(worker, python_endpoint):
    queue = f"{QUEUE}-quorum-{unique_key()[:8]}"
    env = {**os.environ, "DISPATCH_QUEUE": queue, "DISPATCH_QUEUE_TYPE": "quorum"}
    quorum_worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "dispatch.tasks", "-p", "1", "-t", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    key = unique_key()
    script = f"""
import json
from dispatch import URL
ok = URL({python_endpoint.url("/multiply")!r}).send(x=6, y=7)
later = URL({python_endpoint.url("/flaky")!r}, retry_schedule=[0.5]).send(key={key!r}, fail=3)
failed = URL({python_endpoint.url("/fail")!r}).send(reason="dead")
out = [ok.get(timeout=60), later.get(timeout=60)]
try:
    failed.get(timeout=60)
except Exception as exc:
    out.append(type(exc).__name__)
print(json.dumps(out))
"""
    try:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [42, 4, "RemoteExecuteError"]
        listed = rabbitmqctl("list_queues", "-p", VHOST, "name", "type", "messages", "--formatter", "json")
        queues = {q["name"]: q for q in json.loads(listed.stdout)}
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            assert queues[name]["type"] == "quorum", queues.get(name)
        wait_for(lambda: queue_depth(f"{queue}.XQ") == 1, 20, "the dead letter in the quorum XQ")
    finally:
        quorum_worker.terminate()
        quorum_worker.wait(30)
        delete_queues(queue)

"""No ack without a durable outcome, and delays RabbitMQ is happy with -- proven by breaking the real thing.

Each test gives a real worker a Redis or a RabbitMQ that fails in the way
operators have seen: a results store that goes away or hangs while a call is
in flight, a delay queue that refuses the scheduled delivery, a consumer
timeout far shorter than the wait.  Nothing may be lost and nothing may be
acked silently.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from dispatch import TransportError
from dispatch.results import results_backend
from dispatch.settings import Settings

from .support import VHOST, free_port, queue_depth, rabbitmqctl, unique_key, wait_for

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A redis-server of the test's own, so it can be stopped and hung without touching anyone else's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no", "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.cli("PING") == "PONG", 20, "the private redis-server to answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    def outcome(self, handle, timeout: float = 60):
        backend = results_backend(Settings.from_env({"DISPATCH_RESULTS_URL": self.url}))
        return handle.get_result(backend=backend, block=True, timeout=int(timeout * 1000))


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    try:
        yield redis
    finally:
        redis.stop()


def _queues_empty(queue: str) -> bool:
    return all(queue_depth(name) == 0 for name in (queue, f"{queue}.DQ", f"{queue}.XQ"))


@contextlib.contextmanager
def writes_paused(redis: PrivateRedis, ms: int) -> Iterator[None]:
    """``CLIENT PAUSE <ms> WRITE`` on the private Redis; always ``CLIENT UNPAUSE`` at the end."""
    assert redis.cli("CLIENT", "PAUSE", str(ms), "WRITE") == "OK"
    try:
        yield
    finally:
        redis.cli("CLIENT", "UNPAUSE")


def test_an_outcome_in_hand_is_stored_later_not_earned_again(make_worker, python_endpoint, private_redis):
    worker = make_worker(
        ready=False,
        DISPATCH_RESULTS_URL=private_redis.url,
        DISPATCH_RESULTS_STORE_PATIENCE="1",
        DISPATCH_RESULTS_WRITE_TIMEOUT="1",
    )
    key = unique_key()
    handle = worker.send(python_endpoint.url("/slow"), params={"ms": 1500, "key": key})
    wait_for(lambda: python_endpoint.hits(key) == 1, 60, "the call to be in flight")
    with writes_paused(private_redis, 8000):  # from before the answer until well past the patience
        wait_for(lambda: "could not be stored" in worker.log(), 30, "the store to give up")
        time.sleep(8)

    assert private_redis.outcome(handle) == "slow"
    assert python_endpoint.hits(key) == 1  # the answer the worker had was stored, the endpoint not called again
    assert "travels with the message" in worker.log()
    wait_for(lambda: _queues_empty(worker.queue), 30, "nothing left in the queue, .DQ or .XQ")


def test_a_cancelled_call_whose_claim_cannot_be_written_is_never_sent(make_worker, python_endpoint, private_redis):
    from dispatch.actor import default_dispatcher

    worker = make_worker(ready=False, DISPATCH_RESULTS_URL=private_redis.url, DISPATCH_RESULTS_WRITE_TIMEOUT="1")
    states = results_backend(Settings.from_env({"DISPATCH_RESULTS_URL": private_redis.url})).states
    key = unique_key()
    message = default_dispatcher().message(python_endpoint.url("/multiply"), "GET", {"x": 1, "y": 1, "key": key})
    message = message.copy(queue_name=worker.queue)
    states.schedule(message.message_id, 4000)
    default_dispatcher().broker.enqueue(message, delay=4000)
    assert states.cancel(message.message_id) is True
    time.sleep(2)
    with writes_paused(private_redis, 12000):  # around the call's due time
        wait_for(lambda: "cannot record that it starts" in worker.log(), 30, "a claim that cannot be written")
        assert python_endpoint.hits(key) == 0
    wait_for(lambda: f"call {message.message_id} GET" in worker.log() and "cancelled: not sent" in worker.log(), 60,
             "the claim, once Redis writes again, to find the call cancelled")  # fmt: skip
    assert python_endpoint.hits(key) == 0  # never sent, though Redis stalled at the claim
    assert states.cancel(message.message_id) is True


def test_a_hung_redis_does_not_hold_the_worker_thread(make_worker, python_endpoint, private_redis):
    worker = make_worker(
        ready=False,
        threads=1,
        DISPATCH_RESULTS_URL=private_redis.url,
        DISPATCH_RESULTS_STORE_PATIENCE="1",
        DISPATCH_RESULTS_WRITE_TIMEOUT="1",
    )
    key = unique_key()
    hung = worker.send(python_endpoint.url("/slow"), params={"ms": 1000, "key": key})
    wait_for(lambda: python_endpoint.hits(key) == 1, 60, "the call to be in flight")
    sleeper = subprocess.Popen(["redis-cli", "-p", str(private_redis.port), "DEBUG", "SLEEP", "12"])
    try:
        # With one thread, a second call runs only once the first let go of it: long before Redis wakes up.
        # It cannot be claimed while Redis hangs, so it waits (fail closed) -- but it is taken up at once.
        other = worker.send(python_endpoint.url("/slow"), params={"ms": 10})
        wait_for(
            lambda: f"call {other.message_id}: cannot record that it starts" in worker.log(),
            9,
            "the worker thread to be free while Redis hangs",
        )
    finally:
        sleeper.wait(30)
    assert private_redis.outcome(hung) == "slow"
    assert private_redis.outcome(other) == "slow"


def test_a_scheduled_delivery_that_cannot_be_queued_is_dead_lettered_not_acked(make_worker, python_endpoint):
    worker = make_worker(DISPATCH_RETRY_SCHEDULE="1", DISPATCH_MAX_ATTEMPTS="1")
    delay_queue = f"{worker.queue}.DQ"
    policy = rabbitmqctl(
        "set_policy", "-p", VHOST, delay_queue, f"^{delay_queue}$",
        json.dumps({"max-length": 0, "overflow": "reject-publish"}), "--apply-to", "queues",
    )  # fmt: skip
    assert policy.returncode == 0, policy.stderr
    try:
        handle = worker.send(python_endpoint.url("/status/503"))
        with pytest.raises(TransportError, match="could not be queued"):
            handle.get(timeout=60)
        wait_for(lambda: queue_depth(f"{worker.queue}.XQ") == 1, 30, "the call to be kept in the dead-letter queue")
    finally:
        rabbitmqctl("clear_policy", "-p", VHOST, delay_queue)


@pytest.fixture
def short_consumer_timeout() -> Iterator[None]:
    """RabbitMQ's consumer_timeout at 20 s and its channel tick at 1 s; restored even when the test fails."""
    before = {
        name: rabbitmqctl("eval", f"application:get_env(rabbit, {name}).").stdout.strip()
        for name in ("consumer_timeout", "channel_tick_interval")
    }
    for name, value in (("consumer_timeout", 20000), ("channel_tick_interval", 1000)):
        assert rabbitmqctl("eval", f"application:set_env(rabbit, {name}, {value}).").returncode == 0
    try:
        yield
    finally:
        for name, value in before.items():
            if value.startswith("{ok,"):
                rabbitmqctl("eval", f"application:set_env(rabbit, {name}, {value[4:-1]}).")
            else:
                rabbitmqctl("eval", f"application:unset_env(rabbit, {name}).")


def test_a_delay_longer_than_the_consumer_timeout_completes_once(make_worker, python_endpoint, short_consumer_timeout):
    from dispatch.actor import default_dispatcher

    worker = make_worker(DISPATCH_DELAY_HOLD_MAX="5")  # started after the timeout changed: its channels get it
    key = unique_key()
    message = default_dispatcher().message(python_endpoint.url("/multiply"), "GET", {"x": 6, "y": 7, "key": key})
    handle = default_dispatcher().broker.enqueue(message.copy(queue_name=worker.queue), delay=45_000)

    wait_for(lambda: queue_depth(f"{worker.queue}.wait.32") == 1, 20, "the call to wait in RabbitMQ, not in the worker")
    assert python_endpoint.hits(key) == 0
    assert handle.get(timeout=90) == 42
    assert python_endpoint.hits(key) == 1
    log = worker.log()
    assert "PRECONDITION_FAILED" not in log and "consumer ack timed out" not in log.lower(), log


def python_endpoint_get(endpoint, path: str) -> str:
    import requests

    return requests.get(endpoint.url(path), timeout=5).text

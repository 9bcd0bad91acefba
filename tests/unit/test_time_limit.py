"""A call's time limit is its own worst case; one that fires is a transport failure on the call's retry schedule."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import TimeLimit

from dispatch.actor import default_dispatcher
from dispatch.errors import TransportError
from dispatch.middleware import CallTimeLimit
from dispatch.middleware.time_limit import CallTimeLimitExceeded
from dispatch.options import CallOptions, worst_case
from dispatch.runtime import get_runtime
from dispatch.testing import stub_worker


class CallActor(dramatiq.Actor[..., Any]):
    performs_calls = True


def run_one(broker: StubBroker, actor: dramatiq.Actor[..., Any], *args: Any) -> list[BaseException]:
    """Run one message of ``actor`` on a worker; the exceptions its function ended with."""
    actor.send(*args)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join(actor.queue_name, fail_fast=False, timeout=10_000)
    finally:
        worker.stop()
    return seen


seen: list[BaseException] = []


def busy(*args: Any) -> None:
    """Runs Python for up to 10 s, so the limit's exception is delivered; records what stopped it."""
    try:
        for _ in range(1000):
            time.sleep(0.01)
    except BaseException as exc:
        seen.append(exc)
        raise


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    seen.clear()
    settings = dataclasses.replace(get_runtime().settings, backoff_max=0.1, retry_after_max=0.1)
    stub = StubBroker(middleware=[CallTimeLimit(settings, margin=0.3, interval=0.05)])
    yield stub
    stub.close()


def test_a_calls_limit_is_its_worst_case_plus_the_margin(broker):
    actor = CallActor(busy, broker=broker, actor_name="call", queue_name="q", priority=0, options={})
    started = time.monotonic()
    (stopped,) = run_one(broker, actor, "http://x/", "GET", {}, {"timeout": 0.2, "max_attempts": 2})
    # worst case: 2 attempts of 0.2 s and one wait of 0.1 s; limit 0.5 + 0.3 s
    assert isinstance(stopped, CallTimeLimitExceeded) and isinstance(stopped, TransportError)
    assert 0.7 <= time.monotonic() - started < 3


def test_other_messages_keep_dramatiqs_time_limit_option(broker):
    actor = dramatiq.Actor(busy, broker=broker, actor_name="plain", queue_name="p", priority=0, options={})
    started = time.monotonic()
    actor.send_with_options(time_limit=200)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    broker.join("p", fail_fast=False, timeout=10_000)
    worker.stop()
    assert isinstance(seen[0], CallTimeLimitExceeded) and time.monotonic() - started < 3


def test_worst_case_counts_every_attempt_and_the_longest_wait_between():
    settings = dataclasses.replace(get_runtime().settings, backoff_max=10.0, retry_after_max=30.0)
    assert CallOptions.resolve({"timeout": 2, "max_attempts": 3}, settings).worst_case == 3 * 2 + 2 * 30
    assert worst_case({"max_attempts": "many"}, settings) == CallOptions.resolve(None, settings).worst_case


def test_dramatiqs_ten_minutes_are_replaced():
    middleware = get_runtime().broker.middleware
    assert not any(type(m) is TimeLimit for m in middleware)
    assert isinstance(middleware[-1], CallTimeLimit)  # armed last, disarmed first


class Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", "21")
        self.end_headers()
        self.wfile.write(b'{"status": "success"}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_call_past_its_limit_ends_as_a_transport_error():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with stub_worker():
            dispatcher = default_dispatcher()
            url = f"http://127.0.0.1:{server.server_address[1]}/slow"
            handle = dispatcher.send_with_options(args=(url, "GET", {}, {"max_attempts": 1}), time_limit=300)
            with pytest.raises(TransportError, match="time limit"):
                handle.get(timeout=10)
    finally:
        server.shutdown()
        server.server_close()


def test_a_concurrency_lease_outlasts_the_time_limit_and_the_claim() -> None:
    """The slot is taken before the claim: its lease covers the claim's write and WAIT, then the time limit."""
    from dispatch.flow.limits import LEASE_MARGIN_SECONDS, lease_margin, lease_ms
    from dispatch.middleware.time_limit import MARGIN_SECONDS
    from dispatch.settings import Settings

    for write_timeout, wait_timeout in (("5", 1.0), ("30", 1.0), ("1", 0.5)):
        settings = Settings.from_env({"DISPATCH_RESULTS_WRITE_TIMEOUT": write_timeout})
        margin = lease_margin(settings)
        assert margin == MARGIN_SECONDS + float(write_timeout) + wait_timeout + LEASE_MARGIN_SECONDS
        assert margin > MARGIN_SECONDS + float(write_timeout) + wait_timeout
        assert lease_ms(120 + margin) == int((120 + margin) * 1000)

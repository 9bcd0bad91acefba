"""A handle's methods end in the package's own errors, saying what was tried and the fix (issue 21.4).

Redis down: ``ResultsUnavailable`` naming which Redis, never a redis-py error.  No worker on the
queue: ``ResultTimeout`` says so.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.exceptions
import redis.sentinel

from dispatch import CallResult, ResultsUnavailable, ResultTimeout
from dispatch import consumers as consumers_module
from dispatch.redis_connect import NotReplicated
from dispatch.redis_errors import explain_redis_error, mapped_redis_errors
from dispatch.runtime import build_runtime, set_runtime
from dispatch.settings import Settings
from dispatch.testing import stub_worker


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_down() -> Iterator[str]:
    """This process reads outcomes from a Redis port nobody listens on (its URL has a password)."""
    port = closed_port()
    url = f"redis://:pa55word-of-redis@127.0.0.1:{port}/3"
    environ = {
        **os.environ,
        "DISPATCH_RESULTS_URL": url,
        "DISPATCH_SEND_TIMEOUT": "0.5",  # how long cancel() rides out a failover
        "DISPATCH_RESULTS_STORE_PATIENCE": "0.5",  # how long get() does
    }
    previous = set_runtime(build_runtime(Settings.from_env(environ)))
    try:
        yield f"Redis at 127.0.0.1:{port} db 3"
    finally:
        set_runtime(previous)


ACTIONS: dict[str, Callable[[CallResult], Any]] = {
    "get": lambda res: res.get(timeout=1),
    "get-no-timeout": lambda res: res.get(),
    "aget": lambda res: asyncio.run(res.aget(timeout=1)),
    "state": lambda res: res.state(),
    "snapshot": lambda res: res.snapshot(),
    "cancel": lambda res: res.cancel(),
    "acancel": lambda res: asyncio.run(res.acancel()),
    "attempts": lambda res: res.attempts(),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_handle_with_redis_down_raises_results_unavailable_naming_it(redis_down, action):
    handle = CallResult.from_id(str(uuid.uuid4()))
    with pytest.raises(ResultsUnavailable) as caught:
        ACTIONS[action](handle)
    message = str(caught.value)
    assert not isinstance(caught.value, redis.exceptions.RedisError)
    assert redis_down in message and "ConnectionError" in message
    assert "is Redis running? check DISPATCH_RESULTS_URL" in message
    assert "pa55word" not in message


@pytest.mark.parametrize(
    ("error", "url", "words"),
    [
        (redis.exceptions.AuthenticationError("invalid password"), "redis://h:1/0", "check the user and password"),
        (redis.exceptions.OutOfMemoryError("OOM command not allowed"), "redis://h:1/0", "raise maxmemory"),
        (redis.exceptions.ReadOnlyError("READONLY replica"), "redis://h:1/0", "read-only replica"),
        (redis.exceptions.TimeoutError("Timeout reading"), "redis://h:1/0", "did not answer in time"),
        (redis.exceptions.ResponseError("ERR unknown command"), "redis://h:1/0", "refused the command"),
        (NotReplicated("0 of 1 replica(s) confirmed"), "redis://h:1/0", "DISPATCH_REDIS_REPLICAS"),
        (
            redis.sentinel.MasterNotFoundError("No master found for 'calls'"),
            "redis+sentinel://s1:26379,s2:26379/calls/2",
            "are the sentinels running and watching that service?",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_each_redis_error_is_named_with_its_fix(error, url, words):
    with pytest.raises(ResultsUnavailable) as caught, mapped_redis_errors(url):
        raise error
    assert str(caught.value) == explain_redis_error(error, url)
    assert words in str(caught.value) and type(error).__name__ in str(caught.value)
    assert caught.value.__cause__ is error
    if "sentinel" in url:
        assert "Redis master 'calls' of the sentinels at s1:26379, s2:26379 db 2" in str(caught.value)


@pytest.fixture
def no_consumer(monkeypatch) -> list[str]:
    """RabbitMQ, asked, says nobody consumes the queue; the queues asked about are recorded."""
    asked: list[str] = []

    def count(settings: Settings, queue: str | None = None) -> int:
        asked.append(queue or settings.queue)
        return 0

    monkeypatch.setattr(consumers_module, "consumer_count", count)
    monkeypatch.setattr(consumers_module, "_reasons", {})
    return asked


@pytest.mark.parametrize("wait", ["get", "aget"])
def test_a_result_timeout_says_no_worker_consumes_the_queue(no_consumer, wait):
    with stub_worker():
        handle = CallResult.from_id(str(uuid.uuid4())).copy(queue_name="billing.DQ")  # a call sent for later
        with pytest.raises(ResultTimeout) as caught:
            handle.get(timeout=1) if wait == "get" else asyncio.run(handle.aget(timeout=1))
    assert str(caught.value) == (
        f"no outcome for call {handle.message_id} after 1 seconds: no worker is consuming queue 'billing' -- "
        "start one with `dispatch worker` (or `dramatiq dispatch.tasks`); the call stays queued until then"
    )
    assert no_consumer == ["billing"]  # asked once the wait ran out, of the call's own queue


def test_a_burst_of_timeouts_asks_rabbitmq_once(no_consumer):
    with stub_worker():
        for _ in range(3):
            with pytest.raises(ResultTimeout, match="no worker is consuming"):
                CallResult.from_id(str(uuid.uuid4())).get(timeout=0)
    assert len(no_consumer) == 1

"""The call record's worker-side edges against the real Redis (db 9, ids of the test's own).

* a scheduled wait that cannot be written travels in the re-enqueued message and the next claim writes it;
* a replayed dead letter is performed again, never acked as "done" by the outcome of before;
* a redelivery while another delivery of the call still holds its lease is postponed, not performed twice
  -- unless that delivery's worker process no longer says it is alive (killed): then it takes the lease over.
"""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.broker import MessageProxy
from dramatiq.encoder import JSONEncoder

from dispatch import attempts
from dispatch.actor import default_dispatcher
from dispatch.middleware import DurableRetries, SkipCancelled
from dispatch.results.states import CLAIMED, UNRECORDED_WAIT, WAITING, RedisCallStates
from dispatch.settings import Settings

from .support import TEST_ENV, free_port

pytestmark = pytest.mark.integration

_CLIENT = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"], socket_timeout=10)
_NAMESPACE = f"dispatch-record-{uuid.uuid4().hex[:8]}"
_TTL_MS = 60_000


class _Broker:
    """The little of a broker the middleware use: the dispatcher actor, and what was enqueued."""

    def __init__(self) -> None:
        self.actor = default_dispatcher()
        self.actors = {self.actor.actor_name: self.actor}
        self.enqueued: list[tuple[dramatiq.Message[Any], int | None]] = []

    def get_actor(self, name: str) -> Any:
        return self.actors[name]

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        self.enqueued.append((message.copy(), delay))
        return message


def _states(client: redis.Redis) -> RedisCallStates:
    return RedisCallStates(client, _TTL_MS, JSONEncoder(), _NAMESPACE)


def _call(broker: _Broker) -> MessageProxy:
    return MessageProxy(broker.actor.message("http://127.0.0.1:9/x", "GET", {"x": 1}))


@pytest.fixture(autouse=True)
def _clean() -> Any:
    yield
    for key in _CLIENT.scan_iter(f"{_NAMESPACE}:*", count=1000):
        _CLIENT.delete(key)


def test_a_wait_that_cannot_be_written_travels_and_the_next_claim_writes_it() -> None:
    broker, states = _Broker(), _states(_CLIENT)
    message = _call(broker)
    settings = Settings.from_env(TEST_ENV)
    claiming = SkipCancelled(states, settings)
    claiming.before_process_message(broker, message)  # type: ignore[arg-type]
    attempts.RECORDER._append({"at": "t", "status_code": 503, "error": "TransportError", "detail": "", "wire": True})
    closed = redis.Redis(host="127.0.0.1", port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    DurableRetries(_states(closed), patience=0.5).after_process_message(
        broker,  # type: ignore[arg-type]
        message,
        exception=dramatiq.Retry(delay=1_000),
    )
    ((again, delay),) = broker.enqueued
    assert delay == 1_000
    carried = again.options[UNRECORDED_WAIT]
    assert carried["wire"] is True and len(carried["attempts"]) == 1
    next_delivery = MessageProxy(again)
    claiming.before_process_message(broker, next_delivery)  # type: ignore[arg-type]
    assert states.state(again.message_id) == "started"
    holder = _CLIENT.hget(states.keys(again.message_id)[0], "holder").decode()
    assert states.claim(again.message_id, holder, 1_000, carried) == CLAIMED  # the claim retried: written once
    assert [a["attempt"] for a in states.attempts(again.message_id)] == [1]
    assert _CLIENT.hget(states.keys(again.message_id)[0], "wire") == b"1"
    assert UNRECORDED_WAIT not in next_delivery.options  # written: not carried further
    assert states.cancel(again.message_id) is False  # it reached the wire: never "cancelled"
    states.wait(again.message_id, 1_000, [])
    assert states.state(again.message_id) == WAITING
    assert states.claim(again.message_id, "w", 1_000) == CLAIMED


def test_a_replayed_dead_letter_is_performed_again_not_acked_by_its_old_outcome() -> None:
    from dispatch.results import results_backend
    from dispatch.results.states import DONE

    backend = results_backend(Settings.from_env(TEST_ENV))
    states = backend.states
    broker = _Broker()
    message = broker.actor.message("http://127.0.0.1:9/x", "GET", {"x": 1})
    failure = {"__t": "exn", "exn": {"type": "RemoteExecuteError", "msg": "no"}}
    attempt = {"at": "t", "status_code": 500, "error": "RemoteExecuteError", "wire": True}
    try:
        assert states.claim(message.message_id, "d1", 60_000) == CLAIMED
        assert states.finish(message.message_id, failure, 60_000, [attempt], delivery="d1")
        assert states.claim(message.message_id, "d2", 60_000) == DONE  # dead-lettered: a redelivery is acked
        replayed = message.copy(options={"replays": 1})  # as dispatch.deadletters.replay publishes it
        reader, backend.client = backend.client, None  # forget writes through the write client (timeout, WAIT)
        try:
            backend.forget(replayed)
        finally:
            backend.client = reader
        assert states.state(message.message_id) is None  # pending again, not "failure"
        assert not _CLIENT.exists(states.keys(message.message_id)[1])
        assert [a["attempt"] for a in states.attempts(message.message_id)] == [1]  # the call's history stays
        # The failure's travelling copy, from before the replay, arrives late: it does not answer the replay.
        assert states.finish(message.message_id, failure, 60_000, [], replays=0) is False
        assert states.claim(message.message_id, "d3", 60_000) == CLAIMED  # performed again
        assert states.finish(message.message_id, {"ok": 1}, 60_000, [attempt], delivery="d3", replays=1)
        assert states.state(message.message_id) == "success"
    finally:
        _CLIENT.delete(*states.keys(message.message_id))


def test_a_redelivery_while_the_first_delivery_holds_its_lease_waits() -> None:
    from dramatiq.middleware import SkipMessage

    from dispatch.results.states import BUSY

    broker, states = _Broker(), _states(_CLIENT)
    first = _call(broker)
    claiming = SkipCancelled(states, Settings.from_env(TEST_ENV))
    claiming.before_process_message(broker, first)  # type: ignore[arg-type]
    redelivered = MessageProxy(first._message.copy())  # RabbitMQ redelivers it (a lost ack, a consumer timeout)
    with pytest.raises(SkipMessage):
        claiming.before_process_message(broker, redelivered)  # type: ignore[arg-type]
    ((postponed, delay),) = broker.enqueued
    assert postponed.message_id == first.message_id and delay and delay >= 1_000
    assert redelivered.options["postponed"] == "busy"
    assert states.claim(first.message_id, "another/t/1", 1_000) == BUSY  # the first's worker (this process) is alive
    _CLIENT.hset(states.keys(first.message_id)[0], "lease_until_ms", 0)  # the first delivery's lease ran out
    assert states.claim(first.message_id, "another/t/1", 60_000) == CLAIMED
    # A worker killed with kill -9: its lease is unexpired, but it no longer says it is alive.
    states.heartbeat("another", 60_000)
    assert states.claim(first.message_id, "a-dead-host:1/t/2", 1_000) == BUSY  # alive
    _CLIENT.delete(states._alive_key("another"))  # its heartbeat ran out
    assert states.claim(first.message_id, "a-dead-host:1/t/2", 1_000) == CLAIMED  # the redelivery takes over


def test_cancel_is_one_script() -> None:
    """cancel() is ONE write (issue 19's failure #4: the state, then the outcome, was two): one EVALSHA, seen by
    MONITOR -- the state and the CallCancelled outcome in the same script."""
    import subprocess
    import time

    from dispatch.result import CallResult

    warm = uuid.uuid4().hex
    CallResult.from_id(warm).cancel()  # the script cached in Redis, as after any first use
    _CLIENT.delete(*RedisCallStates(_CLIENT, _TTL_MS, JSONEncoder(), "dispatch").keys(warm))
    call_id = uuid.uuid4().hex
    db = TEST_ENV["DISPATCH_RESULTS_URL"].rsplit("/", 1)[1]
    monitor = subprocess.Popen(["redis-cli", "-n", db, "MONITOR"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        assert CallResult.from_id(call_id).cancel() is True
        time.sleep(0.5)
    finally:
        monitor.terminate()
    lines = monitor.communicate(timeout=10)[0].splitlines()
    commands = [line.split('"')[1].lower() for line in lines if call_id in line and "lua]" not in line]
    assert commands == ["evalsha"], lines
    try:
        assert CallResult.from_id(call_id).state() == "cancelled"
    finally:
        _CLIENT.delete(*RedisCallStates(_CLIENT, _TTL_MS, JSONEncoder(), "dispatch").keys(call_id))

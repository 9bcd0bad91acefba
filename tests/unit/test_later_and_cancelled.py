"""send_in/send_at/cancel/from_id with bad input, and through the in-process stub worker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dispatch import URL, CallResult
from dispatch.errors import CallCancelled, DispatchError
from dispatch.runtime import get_runtime
from dispatch.testing import stub_worker


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), 31 * 86400, True, "5", None])
def test_send_in_refuses_a_bad_delay_before_anything_is_queued(seconds):
    with pytest.raises(ValueError, match="send_in"):
        URL("http://example.com/x").send_in(seconds)


@pytest.mark.parametrize("when", [datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 1893456000])
def test_send_at_refuses_a_naive_or_non_datetime(when):
    with pytest.raises(ValueError, match="timezone-aware"):
        URL("http://example.com/x").send_at(when)


@pytest.mark.parametrize("call_id", ["", "   ", None, 42])
def test_from_id_refuses_a_non_id(call_id):
    with pytest.raises(ValueError):
        CallResult.from_id(call_id)


def test_cancel_and_state_through_the_stub_worker():
    with stub_worker():
        handle = URL("http://127.0.0.1:9/never").send_at(datetime.now(timezone.utc) + timedelta(hours=1))
        assert handle.state() == "scheduled"
        assert handle.cancel() is True
        assert handle.cancel() is True  # idempotent: still cancelled, and still never sent
        with pytest.raises(CallCancelled):
            handle.get(timeout=1)
        assert issubclass(CallCancelled, DispatchError)


def test_the_stub_worker_keeps_every_attempt_and_never_replaces_an_outcome(server):
    with stub_worker():
        handle = URL(f"{server.base}/redirect/503?to=x", max_attempts=2, retry_schedule=[0.1]).send()
        with pytest.raises(DispatchError):
            handle.get(timeout=20)
        states = get_runtime().call_states
        attempts = states.attempts(handle.message_id)
        assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]  # 2 quick attempts x 2 deliveries, over its life
        assert all(a["status_code"] == 503 and a["error"] and len(a["detail"]) <= 300 for a in attempts)
        assert handle.cancel() is False  # it reached the wire
        assert states.finish(handle.message_id, 42, 60_000) is False  # a final outcome is never replaced
        with pytest.raises(DispatchError):
            handle.get(timeout=1)


def test_the_memory_record_makes_the_same_transitions():
    from dispatch.results import MemoryResultsBackend
    from dispatch.results.states import CANCELLED, CLAIMED, DONE, MemoryCallStates

    backend = MemoryResultsBackend()
    states = backend.states = MemoryCallStates(backend, 60_000)
    states.schedule("a", 5000)
    assert states.state("a") == "scheduled"
    assert states.cancel("a") is True and states.cancel("a") is True
    assert states.claim("a", "w", 1000) == CANCELLED
    assert states.claim("b", "w", 1000) == CLAIMED
    assert states.cancel("b") is False  # started
    states.wait("b", 1000, [{"at": "t", "wire": False}])
    assert states.state("b") == "waiting" and states.cancel("b") is True  # nothing reached the wire yet
    assert states.claim("c", "w", 1000) == CLAIMED
    states.wait("c", 1000, [{"at": "t", "wire": True}])
    assert states.cancel("c") is False
    assert states.finish("c", "ok", 60_000, [{"at": "u", "wire": True}]) is True
    assert states.claim("c", "w", 1000) == DONE  # a redelivery with an outcome stored: acked, not sent
    assert states.finish("c", "other", 60_000) is False
    assert [a["attempt"] for a in states.attempts("c")] == [1, 2] and "wire" not in states.attempts("c")[0]

"""The call record's state machine, model-checked against a real Redis (hypothesis' stateful testing).

Any interleaving of send (now or later), claim, attempts (reaching the wire
or not), cancel, finish (success or failure), redelivery, a scheduled wait
and the expiry of a finished record keeps the promises:

* ``cancel()`` True => no attempt of the call ever reaches the wire, and it answers True again;
* one final outcome per call; a stored outcome is never replaced;
* the state Redis keeps is the model's; attempts are numbered 1..n over the call's life;
* a record that can still run (scheduled, waiting) or was cancelled lives at least until its next due
  time plus the TTL -- also when ``cancel()`` came before the outbox relay scheduled the call.

Redis db 9 (the integration tests' own), under a key namespace of this test run's own.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
import redis
from dramatiq.encoder import JSONEncoder
from dramatiq.results.result import wrap_exception
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from dispatch.errors import RemoteExecuteError
from dispatch.results.states import CANCELLED, CLAIMED, DONE, STARTED, WAITING, RedisCallStates

from .support import TEST_ENV

pytestmark = pytest.mark.integration

_CLIENT = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"], socket_timeout=10)
_ENCODER = JSONEncoder()
_NAMESPACE = f"dispatch-model-{uuid.uuid4().hex[:8]}"
_TTL_MS = 60_000


@dataclasses.dataclass
class Model:
    state: str | None = None
    outcome: object = None  # the one final outcome, once there is one
    wire: bool = False  # an attempt reached the wire
    cancelled: bool = False
    attempts: int = 0  # attempts made over the call's life
    delivery: list[dict] = dataclasses.field(default_factory=list)  # the current delivery's, not yet written
    due_ms: float = 0.0  # the latest due time asked for (wall clock, ms)


class CallRecordMachine(RuleBasedStateMachine):
    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.states = RedisCallStates(_CLIENT, _TTL_MS, _ENCODER, _NAMESPACE)
        self.model: dict[str, Model] = {}

    # -- the caller --------------------------------------------------------------------------

    @precondition(lambda self: len(self.model) < 2)  # few calls, so the steps meet on the same ones
    @rule(target=calls, delay_ms=st.sampled_from([0, 0, 5_000, 3_600_000]))
    def send(self, delay_ms: int) -> str:
        call_id = uuid.uuid4().hex
        self.model[call_id] = Model()
        if delay_ms:
            self.states.schedule(call_id, delay_ms)
            self.model[call_id].state = "scheduled"
            self.model[call_id].due_ms = _now_ms() + delay_ms
        return call_id

    @rule(call_id=calls, delay_ms=st.sampled_from([5_000, 3_600_000]))
    def relay_schedules(self, call_id: str, delay_ms: int) -> None:
        """The outbox relay records a call for later -- perhaps after cancel() or a worker got to it first."""
        model = self.model.get(call_id)
        if model is None:
            return  # expired and forgotten
        self.states.schedule(call_id, delay_ms)
        if model.state is None and model.outcome is None:
            model.state = "scheduled"
        model.due_ms = max(model.due_ms, _now_ms() + delay_ms)

    @rule(call_id=calls)
    def cancel(self, call_id: str) -> None:
        model = self.model.get(call_id)
        if model is None:
            return  # expired and forgotten
        cancelled = self.states.cancel(call_id)
        if model.cancelled:
            assert cancelled, "a cancelled call answers True again"
        elif model.wire or model.state == STARTED or model.outcome is not None:
            assert not cancelled, "a call that may be on the wire, or is done, cannot be cancelled"
        else:
            assert cancelled
        if cancelled and not model.cancelled:
            model.cancelled, model.state = True, CANCELLED
            model.outcome = wrap_exception(Exception("cancelled"))

    # -- the worker --------------------------------------------------------------------------

    @rule(call_id=calls)
    def claim(self, call_id: str) -> None:
        """A delivery (the first, a scheduled one, or a redelivery after a lost ack) is claimed."""
        model = self.model.get(call_id)
        if model is None:
            return  # expired and forgotten
        verdict = self.states.claim(call_id, "worker", 60_000)
        if model.cancelled:
            assert verdict == CANCELLED
        elif model.outcome is not None:
            assert verdict == DONE
        else:
            assert verdict == CLAIMED
            model.state, model.delivery = STARTED, []

    @rule(call_id=calls, wire=st.booleans())
    def attempt(self, call_id: str, wire: bool) -> None:
        model = self.model.get(call_id)
        if model is None:
            return  # expired and forgotten
        if model.state != STARTED:
            return  # only a claimed delivery makes attempts
        assert not model.cancelled, "an attempt of a cancelled call"
        model.delivery.append({"at": "t", "status_code": 503 if wire else None, "error": "X", "wire": wire})
        model.wire = model.wire or wire

    @rule(call_id=calls, delay_ms=st.sampled_from([1_000, 86_400_000]))
    def reschedule(self, call_id: str, delay_ms: int) -> None:
        model = self.model.get(call_id)
        if model is None:
            return  # expired and forgotten
        if model.state != STARTED:
            return
        self.states.wait(call_id, delay_ms, model.delivery)
        model.attempts += len(model.delivery)
        if not model.delivery:
            model.wire = True  # a delivery without attempts on record: assumed on the wire
        model.delivery = []
        if model.outcome is None:
            model.state = WAITING
            model.due_ms = _now_ms() + delay_ms

    @rule(call_id=calls, success=st.booleans())
    def finish(self, call_id: str, success: bool) -> None:
        """A delivery ends -- or a second delivery of a finished call (a redelivery after a lost ack) does."""
        model = self.model.get(call_id)
        if model is None or model.cancelled or (model.state != STARTED and model.outcome is None):
            return
        outcome = {"n": model.attempts} if success else wrap_exception(RemoteExecuteError("no"))
        stored = self.states.finish(call_id, outcome, 60_000, model.delivery)
        model.attempts += len(model.delivery)
        model.delivery = []
        assert stored == (model.outcome is None)
        if stored:
            model.outcome, model.state = outcome, "success" if success else "failure"

    @rule(call_id=calls)
    def expire(self, call_id: str) -> None:
        """A finished record runs out its TTL (PEXPIRE 1 ms); the call is forgotten."""
        model = self.model.get(call_id)
        if model is None or model.outcome is None:
            return  # not finished: it lives while it can still run
        for key in self.states.keys(call_id):
            _CLIENT.pexpire(key, 1)
        del self.model[call_id]

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def the_record_is_the_model(self) -> None:
        for call_id, model in self.model.items():
            result_key = self.states.keys(call_id)[1]
            assert self.states.state(call_id) == model.state, call_id
            stored = [_ENCODER.decode(entry) for entry in _CLIENT.lrange(result_key, 0, -1)]
            if model.outcome is None:
                assert stored == []
            elif model.cancelled:
                assert len(stored) == 1 and stored[0]["exn"]["type"] == "CallCancelled"
            else:
                assert stored == [model.outcome], "one final outcome, never replaced"
            if model.cancelled:
                assert not model.wire, "cancel() answered True for a call that reached the wire"
            numbers = [attempt["attempt"] for attempt in self.states.attempts(call_id)]
            assert numbers == list(range(1, model.attempts + 1))

    @invariant()
    def a_record_outlives_its_next_due_time(self) -> None:
        slack_ms = 5_000  # the steps' own time, and the clocks of this process and Redis
        for call_id, model in self.model.items():
            if model.state not in ("scheduled", WAITING, CANCELLED):
                continue  # started: its lease keeps it; finished: it lives the TTL
            needed = max(model.due_ms - _now_ms(), 0) + _TTL_MS - slack_ms
            for key in self.states.keys(call_id):
                if _CLIENT.exists(key):
                    assert _CLIENT.pttl(key) >= needed, f"{key} expires before the call is due plus the TTL"


def _now_ms() -> float:
    return time.time() * 1000


CallRecordMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_the_call_record_keeps_its_promises() -> None:
    try:
        CallRecordMachine.TestCase().runTest()
    finally:
        for key in _CLIENT.scan_iter(f"{_NAMESPACE}:*", count=1000):
            _CLIENT.delete(key)


def test_a_cancel_before_the_relay_schedules_holds_until_the_call_is_due() -> None:
    states = RedisCallStates(_CLIENT, _TTL_MS, _ENCODER, f"{_NAMESPACE}-direct")
    call_id = uuid.uuid4().hex
    try:
        assert states.cancel(call_id)  # cancel() on the outbox's handle, before the relay published the call
        states.schedule(call_id, 3_600_000)  # the relay records it for in an hour
        assert states.state(call_id) == CANCELLED
        assert all(_CLIENT.pttl(key) > 3_600_000 for key in states.keys(call_id)[:2])
        assert states.claim(call_id, "worker", 60_000) == CANCELLED
    finally:
        _CLIENT.delete(*states.keys(call_id))


def test_a_retried_write_appends_its_delivery_attempts_once() -> None:
    """FINISH or WAIT retried after the script ran (its answer lost: a socket timeout, NotReplicated)."""
    states = RedisCallStates(_CLIENT, _TTL_MS, _ENCODER, f"{_NAMESPACE}-direct")
    call_id = uuid.uuid4().hex
    attempt = {"at": "t", "status_code": 503, "error": "TransportError", "wire": True}
    try:
        assert states.claim(call_id, "delivery-1", 60_000) == CLAIMED
        for _ in range(3):
            states.wait(call_id, 1_000, [attempt, attempt], delivery="delivery-1")
        assert [a["attempt"] for a in states.attempts(call_id)] == [1, 2]
        assert states.claim(call_id, "delivery-2", 60_000) == CLAIMED
        for _ in range(3):
            assert states.finish(call_id, {"ok": 1}, 30_000, [attempt], delivery="delivery-2") is True
        assert [a["attempt"] for a in states.attempts(call_id)] == [1, 2, 3]
        assert states.finish(call_id, {"ok": 2}, 30_000, [attempt], delivery="delivery-3") is False
        assert [a["attempt"] for a in states.attempts(call_id)] == [1, 2, 3]  # another delivery's: never replaces
        assert all(0 < _CLIENT.pttl(key) <= 30_000 for key in states.keys(call_id))
    finally:
        _CLIENT.delete(*states.keys(call_id))


def test_finish_on_a_stored_outcome_leaves_no_key_without_expiry() -> None:
    states = RedisCallStates(_CLIENT, _TTL_MS, _ENCODER, f"{_NAMESPACE}-direct")
    call_id = uuid.uuid4().hex
    try:
        assert states.cancel(call_id)
        assert states.finish(call_id, {"ok": 1}, 30_000, [{"at": "t", "wire": True}], delivery="d") is False
        assert not _CLIENT.exists(states.keys(call_id)[2])
        assert all(_CLIENT.pttl(key) > 0 for key in states.keys(call_id) if _CLIENT.exists(key))
    finally:
        _CLIENT.delete(*states.keys(call_id))

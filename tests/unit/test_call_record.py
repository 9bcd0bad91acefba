"""The call record's edges in one process: a failure stored before its dead letter, its travelling copy."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tenacity
from dramatiq.brokers import stub as dramatiq_stub

from dispatch import URL, RemoteExecuteError
from dispatch.results import DurableResults
from dispatch.runtime import get_runtime
from dispatch.testing import stub_worker
from tests.support import serving_wsgi


def _failing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"status": "failure", "reason": "no"}).encode()]


def test_a_failure_is_stored_before_its_message_is_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed between the two would leave a dead letter whose outcome is never stored (was: after_nack)."""
    stored_at_nack: list[bool] = []
    nack = dramatiq_stub._StubConsumer.nack

    def spying_nack(self: Any, message: Any) -> None:
        stored_at_nack.append(get_runtime().call_states.state(message.message_id) == "failure")
        nack(self, message)

    monkeypatch.setattr(dramatiq_stub._StubConsumer, "nack", spying_nack)
    with serving_wsgi(_failing_app) as base, stub_worker():
        res = URL(f"{base}/fail").send(x=1)
        with pytest.raises(RemoteExecuteError):
            res.get(timeout=10)
    assert stored_at_nack == [True]


def test_a_failure_that_cannot_be_stored_travels_like_a_success(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails for the whole patience: the failure is stored by a copy of the message, not lost."""
    with serving_wsgi(_failing_app) as base, stub_worker() as broker:
        states = get_runtime().call_states
        finish = states.finish
        failures = [ConnectionError("redis down")] * 2  # the first try and the one retry within the patience

        def failing_finish(*args: Any, **kwargs: Any) -> bool:
            if failures:
                raise failures.pop()
            return finish(*args, **kwargs)

        monkeypatch.setattr(states, "finish", failing_finish)
        durable = next(m for m in broker.middleware if isinstance(m, DurableResults))
        monkeypatch.setattr(durable, "patience", 0.1)  # the copy comes back in a second
        monkeypatch.setattr(durable.retrying, "stop", tenacity.stop_after_attempt(1))
        res = URL(f"{base}/fail").send(x=1)
        with pytest.raises(RemoteExecuteError):
            res.get(timeout=15)
        assert not failures
        assert [m.message_id for m in broker.dead_letters] == [res.message_id]  # the dead letter is kept all the same

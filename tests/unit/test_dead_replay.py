"""A dead letter's replay forgets the old outcome before it publishes, and puts it back if the publish fails.

Forgetting first is what lets the replayed call run (the worker's claim finds no outcome, so it does not ack
the copy as done) and what makes ``get()`` wait for the new outcome.  A replay that RabbitMQ did not confirm
(blocked by an alarm, unreachable, refusing) leaves the dead letter in the queue; its outcome must stay too,
or ``get()`` would wait for an outcome no queued call brings.  The queue is a stand-in here; the real one is
in tests/integration/test_dead_replay.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import dramatiq
import pytest
from dramatiq.results import ResultMissing

from dispatch import CallResult, PublishBlocked, TransportError, deadletters
from dispatch.runtime import build_runtime, get_runtime, set_runtime
from dispatch.settings import Settings


class DeadLetterQueue:
    """A channel on ``.XQ`` holding ``messages``: ``basic_get`` hands each out once, ``basic_ack`` records."""

    def __init__(self, messages: list[dramatiq.Message[Any]]) -> None:
        self.messages = list(messages)
        self.acked: list[int] = []

    def basic_get(self, queue: str, auto_ack: bool = False) -> tuple[Any, Any, bytes | None]:
        if not self.messages:
            return None, None, None
        tag = len(self.messages)
        return SimpleNamespace(delivery_tag=tag), SimpleNamespace(headers={}), self.messages.pop(0).encode()

    def basic_ack(self, tag: int) -> None:
        self.acked.append(tag)


@pytest.fixture
def dead(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dramatiq.Message[Any], DeadLetterQueue]]:
    """A dead call whose failure is stored (outcomes in memory), in a stand-in dead-letter queue."""
    previous = set_runtime(
        build_runtime(Settings.from_env({"DISPATCH_BROKER_URL": "stub://", "DISPATCH_RESULTS_URL": "stub://"}))
    )
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="calls", actor_name="http_dispatch", args=("http://h.example/x", "GET", {}), kwargs={}, options={}
    )
    get_runtime().results.store_exception(message, TransportError("GET http://h.example/x failed: 503"), 60_000)
    queue = DeadLetterQueue([message])

    @contextmanager
    def channel() -> Iterator[tuple[DeadLetterQueue, str]]:
        yield queue, "calls.XQ"

    monkeypatch.setattr(deadletters, "_dead_letter_channel", channel)
    try:
        yield message, queue
    finally:
        set_runtime(previous)


def test_a_replay_rabbitmq_did_not_confirm_keeps_the_letter_and_its_failure(
    dead: tuple[dramatiq.Message[Any], DeadLetterQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    message, queue = dead

    def blocked(*args: Any, **kwargs: Any) -> None:
        raise PublishBlocked("RabbitMQ blocks publishers: a memory or disk alarm", [message.message_id])

    monkeypatch.setattr(deadletters, "publish", blocked)
    with pytest.raises(PublishBlocked):
        deadletters.replay([message.message_id])
    assert queue.acked == []  # the dead letter stays
    with pytest.raises(TransportError, match="failed: 503"):  # and so does its failure: get() does not wait
        CallResult.from_id(message.message_id).get(timeout=0.5)
    assert deadletters._error_of(message) == "TransportError: GET http://h.example/x failed: 503"


def test_a_replay_forgets_the_old_outcome_before_it_publishes(
    dead: tuple[dramatiq.Message[Any], DeadLetterQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After would be too late: the worker's claim would find the old outcome and ack the copy unsent."""
    message, queue = dead
    published: list[Any] = []

    def publish(broker: Any, fresh: dramatiq.Message[Any], *args: Any) -> dramatiq.Message[Any]:
        with pytest.raises(ResultMissing):
            CallResult.from_id(fresh.message_id).get_result(block=False)
        published.append(fresh.message_id)
        return fresh

    monkeypatch.setattr(deadletters, "publish", publish)
    assert deadletters.replay() == [message.message_id] == published
    assert queue.acked == [1]

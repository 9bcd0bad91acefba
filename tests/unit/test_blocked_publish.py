"""A publish RabbitMQ blocks ends at the first blocked-connection timeout, as PublishBlocked (issue 20.4).

dramatiq's ``enqueue`` tries a publish again on a fresh connection after any connection error, six times;
with pika's ``blocked_connection_timeout`` a blocked publish would wait it out six times over.  The real
alarm is raised in tests/integration/test_blocked_broker.py; here a channel that times out blocked shows
the broker gives up after one try, and the parking of long delays keeps the message instead of raising.
"""

from __future__ import annotations

import logging
import time
from queue import PriorityQueue
from typing import Any

import dramatiq
import pika.exceptions
import pytest
from dramatiq import worker as dramatiq_worker
from dramatiq.broker import MessageProxy
from dramatiq.worker import ConsumerThread

from dispatch.brokers.delays import BLOCKED_PAUSE, DelayParking
from dispatch.brokers.rabbitmq import BLOCKED_ADVICE, ClassicRabbitmqBroker
from dispatch.errors import BrokerUnavailable, PublishBlocked
from dispatch.publisher import publish
from dispatch.upstream import HookedRabbitmqBroker


class BlockedChannel:
    def __init__(self) -> None:
        self.publishes = 0

    def basic_publish(self, *args: Any, **kwargs: Any) -> None:
        self.publishes += 1
        raise pika.exceptions.ConnectionBlockedTimeout("Blocked connection timeout expired.")

    def queue_declare(self, *args: Any, **kwargs: Any) -> Any:
        return None


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> BlockedChannel:
    blocked = BlockedChannel()
    monkeypatch.setattr(HookedRabbitmqBroker, "channel", property(lambda self: blocked, None, lambda self: None))
    return blocked


def broker() -> ClassicRabbitmqBroker:
    made = ClassicRabbitmqBroker(url=["amqp://guest:pw-secret@r1:5672/v"], blocked_timeout=3, connect_timeout=2)
    made.queues.add("calls")  # declared already: the publish is the only step
    return made


def message() -> dramatiq.Message:
    return dramatiq.Message(queue_name="calls", actor_name="a", args=(), kwargs={}, options={})


def test_the_broker_sets_pikas_timeouts_on_every_node() -> None:
    made = ClassicRabbitmqBroker(url=["amqp://a/v", "amqp://b/v"], blocked_timeout=3, connect_timeout=2)
    assert [(p.blocked_connection_timeout, p.socket_timeout) for p in made.parameters] == [(3, 2), (3, 2)]


def test_a_blocked_enqueue_is_tried_once_and_raises_publish_blocked(channel: BlockedChannel) -> None:
    with pytest.raises(PublishBlocked) as error:
        broker().enqueue(message())
    assert channel.publishes == 1  # dramatiq alone: 6
    assert str(error.value).startswith(BLOCKED_ADVICE) and "r1:5672" in str(error.value)
    assert "pw-secret" not in str(error.value)
    assert isinstance(error.value, BrokerUnavailable)  # an `except BrokerUnavailable` keeps catching it


def test_publish_names_the_call_it_handed_over_unconfirmed(channel: BlockedChannel) -> None:
    sent = message()
    started = time.monotonic()
    with pytest.raises(PublishBlocked) as error:
        publish(broker(), sent, None, patience=30)
    assert time.monotonic() - started < 5  # not retried for the patience: the blocked timeout was its wait
    assert error.value.message_ids == [sent.message_id]
    assert f"Call {sent.message_id} was not confirmed" in str(error.value)


def test_parking_a_delay_while_blocked_keeps_the_message(channel: BlockedChannel) -> None:
    eta = (time.time() + 3600) * 1000
    delayed: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="calls.DQ", actor_name="a", args=(), kwargs={}, options={"eta": eta}
    )
    assert DelayParking(hold_max=300).park(broker(), delayed) is False  # held by the worker, not lost


def test_after_a_blocked_park_a_backlog_is_held_without_waiting_for_each(
    channel: BlockedChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each blocked park waits DISPATCH_SEND_TIMEOUT: a backlog of long delays would stall .DQ that long apiece."""
    parking, made = DelayParking(hold_max=300), broker()
    backlog = [delayed_message(3600) for _ in range(50)]
    assert [parking.park(made, message) for message in backlog] == [False] * 50  # all held
    assert channel.publishes == 1  # only the first waited for RabbitMQ
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + BLOCKED_PAUSE + 1)
    assert parking.park(made, backlog[0]) is False and channel.publishes == 2  # tried again after the pause


class HeldMessages:
    """A consumer of ``.DQ`` handing out ``messages``, then nothing; acks nothing back to RabbitMQ (like dramatiq's)."""

    def __init__(self, messages: list[MessageProxy]) -> None:
        self.messages = messages
        self.acked: list[str] = []
        self.closed = False

    def __iter__(self) -> HeldMessages:
        return self

    def __next__(self) -> MessageProxy | None:
        return self.messages.pop(0) if self.messages else None

    def ack(self, message: MessageProxy) -> None:
        self.acked.append(message.message_id)

    nack = ack

    def requeue(self, messages: Any) -> None:
        """RabbitMQ's consumer: a no-op (what it held comes back when it closes)."""

    def close(self) -> None:
        self.closed = True


def delayed_message(seconds_from_now: float) -> dramatiq.Message[Any]:
    eta = int((time.time() + seconds_from_now) * 1000)
    return dramatiq.Message(queue_name="calls.DQ", actor_name="a", args=(), kwargs={}, options={"eta": eta})


def due_in(seconds_from_now: float) -> MessageProxy:
    return MessageProxy(delayed_message(seconds_from_now))


def test_a_blocked_promotion_restarts_the_delay_consumer_afresh_and_acks_nothing(
    channel: BlockedChannel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """dramatiq's own .DQ consumer thread promotes a due message with ``enqueue``; blocked, it must start over
    as after a lost connection -- its in-memory delay queue dropped (RabbitMQ redelivers what it held) --
    not keep that queue, whose messages would then be published twice and their acks fail."""
    made = ClassicRabbitmqBroker(url="amqp://r1/v", blocked_timeout=3, middleware=[])
    made.queues.add("calls")
    first, second = HeldMessages([due_in(3600), due_in(-1)]), HeldMessages([])
    thread = ConsumerThread(
        broker=made, queue_name="calls.DQ", prefetch=2, work_queue=PriorityQueue(), worker_timeout=10
    )

    def consume(queue_name: str, prefetch: int, timeout: int) -> HeldMessages:
        if not second.closed and first.closed:
            thread.stop()  # started again: that is all this test needs to see
        return first if not first.closed else second

    monkeypatch.setattr(made, "consume", consume)
    monkeypatch.setattr(dramatiq_worker, "CONSUMER_RESTART_DELAY_SECS", 0)
    with caplog.at_level(logging.INFO, logger="dramatiq"):
        thread.run()  # in this thread: returns once stopped
    assert channel.publishes == 1 and first.closed
    assert first.acked == []  # the due message was not acked: RabbitMQ redelivers it
    assert thread.delay_queue.empty()  # the message held for an hour is not kept in memory: redelivered too
    assert "Consumer encountered a connection error: " + BLOCKED_ADVICE in caplog.text
    assert "unexpected error" not in caplog.text
    assert isinstance(made.blocked(), PublishBlocked)  # callers catch it as before

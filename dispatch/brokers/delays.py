"""Delays of hours and days that RabbitMQ is happy with.

dramatiq delays a message by publishing it to ``<queue>.DQ``; a worker
takes it from there at once and holds it, *unacknowledged*, until its time
comes.  RabbitMQ closes any channel that holds a delivery longer than its
``consumer_timeout`` (30 minutes by default) and requeues everything on it
-- so a schedule step of 2 hours, or an endpoint's long ``Retry-After``,
would bounce between worker and broker forever (dramatiq issue #827).

Here a worker holds a delayed message only while less than
``DISPATCH_DELAY_HOLD_MAX`` (300 s) of its wait is left.  A message with
longer to go is *parked*: re-published, with publisher confirms, to a
**wait queue** and only then acked.  Wait queues come in tiers of powers of
two seconds (``<queue>.wait.1``, ``.wait.2``, ... ``.wait.2097152``, about
24 days).  Each has a message TTL equal to its tier and dead-letters
expired messages back to ``<queue>.DQ``.  A message goes to the largest
tier not longer than what is left of its wait, comes back to ``.DQ`` when
the tier expires, and is parked again in a smaller tier or held for the
last few minutes -- a wait of ``d`` seconds takes at most ``log2(d)`` hops,
and no message is ever unacked in a worker for longer than the hold limit.
The message itself (id, options, ``eta``) travels unchanged.

While RabbitMQ blocks publishers (a memory or disk alarm) a park waits
``DISPATCH_SEND_TIMEOUT`` and fails; the message is then held instead.  The
block is remembered: for :data:`BLOCKED_PAUSE` seconds after, messages are
held without trying, so a backlog of long delays does not stall the ``.DQ``
consumer one timeout each.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import dramatiq
import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name, q_name

from ..errors import PublishBlocked
from ..redaction import get_logger
from ..upstream import publish_properties, reset_connection

logger = get_logger("dispatch.delays")

#: Seconds parking is not tried after RabbitMQ blocked a park: messages are held meanwhile.
BLOCKED_PAUSE = 30.0

#: Wait-queue tiers, in seconds: 1, 2, 4, ... 2**21 (about 24 days).
TIERS = tuple(2**exponent for exponent in range(22))


def tier_for(remaining: float) -> int:
    """The longest tier that does not overshoot ``remaining`` seconds (at least the shortest tier)."""
    fitting = [tier for tier in TIERS if tier <= remaining]
    return fitting[-1] if fitting else TIERS[0]


def wait_queue_name(queue_name: str, tier: int) -> str:
    return f"{q_name(queue_name)}.wait.{tier}"


def wait_queue_arguments(queue_name: str, tier: int, queue_arguments: dict[str, Any]) -> dict[str, Any]:
    """A queue whose messages expire after ``tier`` seconds into ``<queue>.DQ``, plus ``queue_arguments``."""
    return {
        "x-message-ttl": tier * 1000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dq_name(q_name(queue_name)),
        **queue_arguments,
    }


@dataclasses.dataclass
class DelayParking:
    """Parks delayed messages with more than ``hold_max`` seconds to go in the wait queues.

    ``queue_arguments`` are the broker flavour's own (quorum queues: message TTL needs RabbitMQ >= 3.10).
    """

    hold_max: float
    queue_arguments: dict[str, Any] = dataclasses.field(default_factory=dict)
    declared: set[str] = dataclasses.field(default_factory=set)
    #: ``time.monotonic()`` until which parking is not tried (RabbitMQ blocked the last park).
    paused_until: float = 0.0

    def should_park(self, message: dramatiq.Message) -> bool:
        eta = message.options.get("eta")
        return (
            message.queue_name == dq_name(q_name(message.queue_name))
            and isinstance(eta, (int, float))
            and (eta / 1000 - time.time() > self.hold_max)
        )

    def park(self, broker: RabbitmqBroker, message: dramatiq.Message) -> bool:
        """Publish ``message`` to its wait queue with a confirm; False (the caller keeps it) if that failed,
        or if RabbitMQ blocked a park less than :data:`BLOCKED_PAUSE` seconds ago."""
        if time.monotonic() < self.paused_until:
            return False
        remaining = message.options["eta"] / 1000 - time.time()
        tier = tier_for(remaining)
        name = wait_queue_name(message.queue_name, tier)
        try:
            channel = broker.channel  # this thread's channel, with publisher confirms
            if name not in self.declared:
                channel.queue_declare(
                    name, durable=True, arguments=wait_queue_arguments(message.queue_name, tier, self.queue_arguments)
                )
                self.declared.add(name)
            channel.basic_publish(
                exchange="",
                routing_key=name,
                body=message.encode(),
                properties=publish_properties(message),
                mandatory=True,
            )
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, PublishBlocked) as error:
            reset_connection(broker)  # PublishBlocked: dropped already; dropping again is harmless
            self.declared.discard(name)
            pause = ""
            if isinstance(error, PublishBlocked):
                self.paused_until = time.monotonic() + BLOCKED_PAUSE
                pause = f"; delayed calls are held, not parked, for {BLOCKED_PAUSE:g}s"
            logger.warning(
                "call %s: could not park it in %s (%s); holding it instead%s", message.message_id, name, error, pause
            )
            return False
        logger.debug("call %s: %.0fs to wait, parked in %s", message.message_id, remaining, name)
        return True

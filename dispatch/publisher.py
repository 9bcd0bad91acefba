"""Putting calls on the queue: one at a time, or many with pipelined confirms.

Both paths hand back a message only once RabbitMQ has *confirmed* it
(publisher confirms), so a handle in a caller's hand always stands for a
stored call.  They differ in how many confirms they wait for at once:

* :func:`publish` is dramatiq's ``enqueue``: publish one persistent message
  and wait for its confirm.  With one message in flight, every confirm waits
  for its own disk write, which caps a loop of ``send()`` at roughly a
  thousand calls a second.
* :func:`publish_many` keeps a *window* of unconfirmed messages in flight
  and lets RabbitMQ confirm them in groups (``multiple=True``), the way
  RabbitMQ's own docs recommend for throughput.  The guarantee is the same:
  the call returns when every message is confirmed, or raises.

While the broker is unreachable both keep trying for ``patience`` seconds
(``DISPATCH_SEND_TIMEOUT``), then raise :class:`BrokerUnavailable`.  A
message whose connection dropped before its confirm arrived is published
again on the new connection: it may then be queued twice, which is what
at-least-once means, and why every attempt carries an ``Idempotency-Key``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import dramatiq
import pika
import pika.exceptions
import tenacity
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.errors import BrokerConnectionError, ConnectionClosed

from .errors import BrokerUnavailable, PublishRefused
from .upstream import async_channel

logger = logging.getLogger(__name__)

#: Unconfirmed messages :func:`publish_many` keeps in flight.  RabbitMQ
#: confirms a persistent message once it is written to disk and writes in
#: batches, so the window is what lets one disk write confirm many messages.
CONFIRM_WINDOW = 256

#: How long one wait for confirms blocks before publishing resumes.
_POLL_SECONDS = 0.001

#: Publishes between two turns of pika's I/O loop (which is when frames are written).
_FLUSH_EVERY = 32


def publish(broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None, patience: float):
    """Enqueue ``message`` and return it once RabbitMQ confirmed it.

    While the broker is unreachable (restarting, failing over) keep trying
    for up to ``patience`` seconds, then raise BrokerUnavailable: a caller
    gets either a confirmed message or an error, never a handle for a call
    that was not stored.
    """
    try:
        return broker.enqueue(message, delay=delay)  # the usual case, without building a retry loop
    except BrokerConnectionError as exc:
        if _refused(exc):
            raise _refusal(message) from None
    try:
        return _reconnecting(patience)(broker.enqueue, message, delay=delay)
    except BrokerConnectionError as exc:
        if _refused(exc):
            raise _refusal(message) from None
        raise BrokerUnavailable(
            f"RabbitMQ unreachable for {patience:g}s (DISPATCH_SEND_TIMEOUT), call {message.message_id} "
            f"was not sent: {exc}"
        ) from None


def publish_many(
    broker: dramatiq.Broker, messages: Sequence[dramatiq.Message], patience: float, window: int = CONFIRM_WINDOW
) -> list[dramatiq.Message]:
    """Enqueue all ``messages`` with up to ``window`` unconfirmed at a time; return them once all are confirmed.

    Raises PublishRefused (naming what was and was not sent) if RabbitMQ
    refused some, and BrokerUnavailable if it stayed unreachable.
    """
    if not isinstance(broker, RabbitmqBroker):  # the StubBroker confirms nothing; enqueue is instant
        return [publish(broker, message, None, patience) for message in messages]
    batch = _ConfirmedBatch(broker, messages, window, patience)
    try:
        for attempt in _reconnecting(patience):
            with attempt:
                batch.publish_unconfirmed()
    except BrokerConnectionError as exc:
        raise BrokerUnavailable(
            f"RabbitMQ unreachable for {patience:g}s (DISPATCH_SEND_TIMEOUT): {len(batch.unconfirmed)} of "
            f"{len(messages)} calls were not confirmed, the others were sent: {exc}"
        ) from None
    if batch.refused:
        sent = [m for m in messages if m.message_id not in batch.refused]
        raise PublishRefused(
            f"RabbitMQ refused {len(batch.refused)} of {len(messages)} calls on queue "
            f"{messages[0].queue_name!r} (is the queue at its length limit, or gone?); the other {len(sent)} were sent",
            sent=sent,
            refused=list(batch.refused.values()),
        )
    return list(messages)


class _ConfirmedBatch:
    """The bookkeeping of one :func:`publish_many`: which messages are still waiting for a confirm.

    It publishes on a channel of its own, through pika's asynchronous
    channel underneath the blocking one: the blocking channel can only
    publish-and-wait, one message at a time.
    """

    def __init__(self, broker: RabbitmqBroker, messages: Sequence[dramatiq.Message], window: int, patience: float):
        self.broker = broker
        self.window = max(1, window)
        self.patience = patience
        self.unconfirmed = {message.message_id: message for message in messages}
        self.refused: dict[str, dramatiq.Message] = {}
        self._in_flight: dict[int, dramatiq.Message] = {}  # delivery tag -> message, in publish order
        self._returned: set[str] = set()
        self._progress_at = 0.0

    def publish_unconfirmed(self) -> None:
        """Publish every message not yet confirmed and wait for the confirms; ConnectionClosed if the link drops."""
        try:
            for _ in range(3):  # a message returned as unroutable goes again, after its queue is re-declared
                if not self.unconfirmed:
                    return
                self._publish_round(list(self.unconfirmed.values()))
            self.refused.update(self.unconfirmed)  # still unroutable: not stored, so not sent
            self.unconfirmed.clear()
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            logger.warning(
                "lost the RabbitMQ connection with %d calls unconfirmed (%s); they will be published again",
                len(self.unconfirmed),
                exc,
            )
            del self.broker.connection  # dramatiq's way to start over on a fresh connection
            raise ConnectionClosed(exc) from None

    def _publish_round(self, messages: list[dramatiq.Message]) -> None:
        for queue_name in {message.queue_name for message in messages}:
            self.broker.declare_queue(queue_name, ensure=True)
        connection = self.broker.connection
        channel = connection.channel()
        self._in_flight.clear()
        self._returned.clear()
        self._progress_at = time.monotonic()
        pipelined = async_channel(channel)
        pipelined.add_on_return_callback(self._on_return)
        pipelined.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: None)
        for tag, message in enumerate(messages, start=1):
            while len(self._in_flight) >= self.window:
                self._wait(connection)
            self.broker.emit_before("enqueue", message, None)
            pipelined.basic_publish(
                exchange="",
                routing_key=message.queue_name,
                body=message.encode(),
                properties=pika.BasicProperties(delivery_mode=2, priority=message.options.get("broker_priority")),
                mandatory=True,
            )
            self._in_flight[tag] = message
            if tag % _FLUSH_EVERY == 0:
                connection.process_data_events(time_limit=0)
        while self._in_flight:
            self._wait(connection)
        channel.close()

    def _wait(self, connection: pika.BlockingConnection) -> None:
        connection.process_data_events(time_limit=_POLL_SECONDS)
        if time.monotonic() - self._progress_at > self.patience:
            raise pika.exceptions.AMQPConnectionError(f"no publisher confirm from RabbitMQ for {self.patience:g}s")

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        confirm = frame.method
        self._progress_at = time.monotonic()
        if confirm.multiple:
            tags = [tag for tag in self._in_flight if tag <= confirm.delivery_tag]
        else:
            tags = [confirm.delivery_tag]
        for tag in tags:
            message = self._in_flight.pop(tag)
            if isinstance(confirm, pika.spec.Basic.Nack):
                self.refused[message.message_id] = self.unconfirmed.pop(message.message_id)
            elif message.message_id in self._returned:
                self.broker.queues_pending.add(message.queue_name)  # the queue vanished: declare it again
            else:
                del self.unconfirmed[message.message_id]
                self.broker.emit_after("enqueue", message, None)

    def _on_return(self, _channel, _method, _properties, body: bytes) -> None:
        self._returned.add(dramatiq.Message.decode(body).message_id)


def _reconnecting(patience: float) -> tenacity.Retrying:
    """Retry while the broker is unreachable (not when it refuses), for up to ``patience`` seconds."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, BrokerConnectionError) and not _refused(exc)),
        stop=tenacity.stop_after_delay(patience),
        wait=tenacity.wait_exponential(multiplier=0.25, max=2),
        reraise=True,
    )


def _refused(error: BrokerConnectionError) -> bool:
    """dramatiq reports a negative publisher confirm as a closed connection, wrapping pika's NackError."""
    return isinstance(getattr(error, "message", None), pika.exceptions.NackError)


def _refusal(message: dramatiq.Message) -> PublishRefused:
    return PublishRefused(
        f"RabbitMQ refused call {message.message_id} on queue {message.queue_name!r} "
        "(is the queue at its length limit?); it was not sent"
    )

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

On a cluster (``DISPATCH_BROKER_URL`` listing several nodes) a lost node is
just a dropped connection: pika reconnects to the next node of the list.
A quorum queue may also *refuse* a publish (a negative confirm) for the
moment it elects a new leader.  A refusal that clears within
:data:`NACK_PATIENCE` is retried and never reaches the caller; one that
lasts is a real refusal -- the queue at its length limit -- and raises
:class:`PublishRefused`.  Errors name what happened: the nodes that could
not be reached (``host:port``, never a password), a queue whose home node
is down, or the refusal.

Waits end, and failures are exact:

* RabbitMQ blocking publishers (a memory or disk alarm) is not waited out:
  after ``DISPATCH_SEND_TIMEOUT`` with no confirm the publish raises
  :class:`PublishBlocked`, naming the alarm and the fix, and the ids of the
  calls handed over unconfirmed -- RabbitMQ may still queue them when the
  alarm clears (:mod:`dispatch.brokers.rabbitmq`).
* A refused login (``ACCESS_REFUSED``) or vhost raises
  :class:`BrokerAccessRefused` at once: trying again cannot help.
* While RabbitMQ refuses connections, the first failed try is reported at
  once -- one WARNING, or the caller's ``on_wait`` (which may give up by
  raising) -- and the publish keeps trying for its patience.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import dramatiq
import pika
import pika.exceptions
import tenacity
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.errors import BrokerConnectionError, ConnectionClosed

from .brokers.rabbitmq import BLOCKED_ADVICE
from .cluster import describe_nodes
from .errors import BrokerAccessRefused, BrokerUnavailable, PublishBlocked, PublishRefused
from .redaction import get_logger, redact
from .settings import Settings
from .upstream import async_channel, declare_again, publish_properties, reset_connection

logger = get_logger(__name__)

#: Unconfirmed messages :func:`publish_many` keeps in flight.  RabbitMQ
#: confirms a persistent message once it is written to disk and writes in
#: batches, so the window is what lets one disk write confirm many messages.
CONFIRM_WINDOW = 256

#: How long one wait for confirms blocks before publishing resumes.
_POLL_SECONDS = 0.001

#: Publishes between two turns of pika's I/O loop (which is when frames are written).
_FLUSH_EVERY = 32

#: Seconds a negative confirm is retried before it counts as a refusal (bounded by
#: ``DISPATCH_SEND_TIMEOUT``).  A quorum queue electing a leader refuses for ~0.15 s; a queue
#: at its length limit refuses for as long as nobody consumes, and is reported after this.
#: RabbitMQ gives no reason with a nack, so time is what tells the two apart: retrying a
#: length-limit refusal until the send timeout would make every back-pressure signal 10 s late.
NACK_PATIENCE = 1.0

#: A message's own class: a CallResult stays one (dramatiq copies messages with ``dataclasses.replace``).
M = TypeVar("M", bound=dramatiq.Message[Any])


def check_message_size(message: dramatiq.Message, settings: Settings, what: str) -> None:
    """Raise ValueError if ``message`` encodes larger than ``DISPATCH_MAX_MESSAGE_BYTES``; ``what`` names it."""
    size, limit = len(message.encode()), settings.max_message_bytes
    if size > limit:
        raise ValueError(
            f"{what} encodes to {size} bytes, over the {limit}-byte limit for one message "
            f"({Settings.env('max_message_bytes')}); send a reference to the data instead"
        )


def publish(
    broker: dramatiq.Broker,
    message: M,
    delay: int | None,
    patience: float,
    *,
    on_wait: Callable[[str], None] | None = None,
) -> M:
    """Enqueue ``message`` and return it once RabbitMQ confirmed it.

    While the broker is unreachable (restarting, failing over to another
    node) keep trying for up to ``patience`` seconds, then raise
    BrokerUnavailable; a refusal is retried for :data:`NACK_PATIENCE`, then
    raises PublishRefused; a refused login raises BrokerAccessRefused at once,
    and a blocked publisher PublishBlocked when its timeout runs out.  A
    caller gets either a confirmed message or an error, never a handle for a
    call that was not stored.

    ``on_wait(what)`` hears once, after the first try that found RabbitMQ
    unreachable, what is wrong (e.g. "RabbitMQ refuses connections at
    127.0.0.1:5672"); it may raise to give up at once.  By default a WARNING
    is logged.
    """
    started = time.monotonic()
    try:
        return _enqueue(broker, message, delay, started)  # the usual case, without building a retry loop
    except BrokerConnectionError as exc:
        error = exc
    pause, told = 0.05, False
    while True:
        kind = _kind(error)
        if kind == "login":
            raise BrokerAccessRefused(
                f"{_what_failed(kind, error, broker, message.queue_name)}; call {message.message_id} was not sent"
            ) from None
        budget = min(patience, NACK_PATIENCE) if kind == "refused" else patience
        left = budget - (time.monotonic() - started)
        if left <= 0:
            if kind == "refused":
                raise _refusal(message, time.monotonic() - started) from None
            raise BrokerUnavailable(
                f"{_what_failed(kind, error, broker, message.queue_name)}; tried for {patience:g}s "
                f"(DISPATCH_SEND_TIMEOUT), call {message.message_id} was not sent"
            ) from None
        if kind == "unreachable" and not told:
            told = True
            what = _what_failed(kind, error, broker, message.queue_name)
            if on_wait is None:
                logger.warning("%s; trying again for up to %gs (DISPATCH_SEND_TIMEOUT)", what, patience)
            else:
                on_wait(what)
        time.sleep(min(pause, left))
        pause = min(pause * 2, 1.0)
        try:
            return _enqueue(broker, message, delay, started)
        except BrokerConnectionError as exc:
            error = exc


def _enqueue(broker: dramatiq.Broker, message: M, delay: int | None, started: float) -> M:
    """``broker.enqueue``; a blocked publish raises PublishBlocked naming the call (it may be queued later)."""
    try:
        return cast(M, broker.enqueue(message, delay=delay))
    except PublishBlocked:
        raise PublishBlocked(
            f"{BLOCKED_ADVICE}. Call {message.message_id} was not confirmed within "
            f"{time.monotonic() - started:.0f}s (DISPATCH_SEND_TIMEOUT): RabbitMQ holds it and may queue it "
            "when the alarm clears",
            [message.message_id],
        ) from None


def publish_many(
    broker: dramatiq.Broker, messages: Sequence[M], patience: float, window: int = CONFIRM_WINDOW
) -> list[M]:
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
    except PublishBlocked:
        unconfirmed = list(batch.unconfirmed)
        raise PublishBlocked(
            f"{BLOCKED_ADVICE}. {len(unconfirmed)} of {len(messages)} calls were not confirmed within "
            f"{patience:g}s (DISPATCH_SEND_TIMEOUT): RabbitMQ holds them and may queue them when the alarm "
            "clears (exc.message_ids); the others were sent",
            unconfirmed,
        ) from None
    except BrokerConnectionError as exc:
        unconfirmed = list(batch.unconfirmed)  # exc.message_ids: the outbox relay deletes the others' rows
        if _kind(exc) == "login":
            raise BrokerAccessRefused(
                f"{_what_failed('login', exc, broker, messages[0].queue_name)}; {len(unconfirmed)} of "
                f"{len(messages)} calls were not sent (exc.message_ids)",
                unconfirmed,
            ) from None
        raise BrokerUnavailable(
            f"{_what_failed(_kind(exc), exc, broker, messages[0].queue_name)}; tried for {patience:g}s "
            f"(DISPATCH_SEND_TIMEOUT): {len(unconfirmed)} of {len(messages)} calls were not confirmed "
            "(exc.message_ids), the others were sent",
            unconfirmed,
        ) from None
    if batch.refused:
        sent = [m for m in messages if m.message_id not in batch.refused]
        raise PublishRefused(
            f"RabbitMQ refused {len(batch.refused)} of {len(messages)} calls on queue "
            f"{messages[0].queue_name!r} (refused for {min(patience, NACK_PATIENCE):g}s: is the queue at its "
            f"length limit? Or unroutable: gone); the other {len(sent)} were sent",
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
        # A blocked connection is dropped by pika after the broker's blocked_timeout, which tells a blocked
        # publisher (PublishBlocked) apart; a confirm missing for longer is a connection gone quiet.
        self.confirm_patience = max(patience, getattr(broker, "blocked_timeout", None) or 0.0) + 1.0
        self.unconfirmed = {message.message_id: message for message in messages}
        self.refused: dict[str, dramatiq.Message] = {}
        self._in_flight: dict[int, dramatiq.Message] = {}  # delivery tag -> message, in publish order
        self._returned: set[str] = set()
        self._nacked: set[str] = set()
        self._first_nack_at: float | None = None
        self._progress_at = 0.0

    def publish_unconfirmed(self) -> None:
        """Publish every message not yet confirmed and wait for the confirms; ConnectionClosed if the link drops."""
        try:
            unroutable_rounds, pause = 0, 0.05
            while self.unconfirmed:
                self._nacked.clear()
                self._publish_round(list(self.unconfirmed.values()))
                nacked = [message_id for message_id in self.unconfirmed if message_id in self._nacked]
                nacked_for = time.monotonic() - (self._first_nack_at or 0.0)  # set by the first nack
                if nacked and nacked_for < min(self.patience, NACK_PATIENCE):
                    time.sleep(pause)  # a quorum queue electing its leader: a moment later it takes them
                    pause = min(pause * 2, 0.4)
                    continue
                for message_id in nacked:  # refused for good: not stored, so not sent
                    self.refused[message_id] = self.unconfirmed.pop(message_id)
                if self.unconfirmed:  # returned as unroutable: they go again, after the queue is re-declared
                    unroutable_rounds += 1
                    if unroutable_rounds >= 3:
                        self.refused.update(self.unconfirmed)  # still unroutable: not stored, so not sent
                        self.unconfirmed.clear()
        except pika.exceptions.ConnectionBlockedTimeout:
            reset_connection(self.broker)
            raise PublishBlocked(BLOCKED_ADVICE) from None  # publish_many says which calls
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            logger.warning(
                "lost the RabbitMQ connection with %d calls unconfirmed (%s); they will be published again",
                len(self.unconfirmed),
                exc,
            )
            reset_connection(self.broker)
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
                properties=publish_properties(message),
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
        if time.monotonic() - self._progress_at > self.confirm_patience:
            raise pika.exceptions.AMQPConnectionError(
                f"no publisher confirm from RabbitMQ for {self.confirm_patience:g}s"
            )

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
                self._nacked.add(message.message_id)
                if self._first_nack_at is None:
                    self._first_nack_at = time.monotonic()
            elif message.message_id in self._returned:
                declare_again(self.broker, message.queue_name)  # the queue vanished
            else:
                del self.unconfirmed[message.message_id]
                self.broker.emit_after("enqueue", message, None)

    def _on_return(self, _channel, _method, _properties, body: bytes) -> None:
        self._returned.add(dramatiq.Message.decode(body).message_id)


def _reconnecting(patience: float) -> tenacity.Retrying:
    """Retry while the broker is unreachable (not when it refuses a message or a login), for ``patience`` seconds."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, BrokerConnectionError) and _kind(exc) in ("unreachable", "queue")
        ),
        stop=tenacity.stop_after_delay(patience),
        wait=tenacity.wait_exponential(multiplier=0.25, max=2),
        reraise=True,
    )


def _kind(error: BrokerConnectionError) -> str:
    """What a failed publish ran into: ``refused`` (a nack), ``queue`` (the queue is unavailable), ``login``
    (RabbitMQ refused the credentials or the vhost) or ``unreachable``.

    dramatiq reports each as a closed connection wrapping pika's error.
    """
    cause = getattr(error, "message", None)
    if isinstance(cause, pika.exceptions.NackError):
        return "refused"
    if isinstance(cause, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
        return "login"
    if isinstance(cause, pika.exceptions.ProbableAccessDeniedError):
        return "login"
    if isinstance(cause, pika.exceptions.UnroutableError):
        return "queue"
    if isinstance(cause, pika.exceptions.ChannelClosedByBroker) and cause.reply_code == 404:
        return "queue"  # e.g. "home node 'rabbit@b' of durable queue 'q' ... is down or inaccessible"
    return "unreachable"


def _what_failed(kind: str, error: BrokerConnectionError, broker: dramatiq.Broker, queue: str) -> str:
    """The first half of an error message: what was unavailable, named without credentials."""
    cause = getattr(error, "message", error)
    if kind == "queue":
        reason = getattr(cause, "reply_text", "") or "its messages came back unroutable"
        return f"RabbitMQ queue {queue!r} unavailable ({reason}; is its node down?)"
    parameters = getattr(broker, "parameters", [])
    nodes = describe_nodes(parameters)
    if isinstance(cause, pika.exceptions.ProbableAccessDeniedError):
        vhost = getattr(parameters[0] if isinstance(parameters, list) else parameters, "virtual_host", "?")
        return (
            f"RabbitMQ at {nodes} denied access to vhost {vhost!r} (does it exist, and may the user use it?); "
            "check DISPATCH_BROKER_URL"
        )
    if kind == "login":
        return (
            f"RabbitMQ at {nodes} refused the login (ACCESS_REFUSED: wrong user or password); "
            "check the credentials in DISPATCH_BROKER_URL"
        )
    if "ConnectionRefusedError" in repr(cause):
        return f"RabbitMQ unreachable at {nodes}: it refuses connections (is it running? check DISPATCH_BROKER_URL)"
    detail = redact(f"{type(cause).__name__}{': ' + str(cause) if str(cause) else ''}")
    return f"RabbitMQ unreachable at {nodes} ({detail})"


def _refusal(message: dramatiq.Message, refused_for: float = 0.0) -> PublishRefused:
    return PublishRefused(
        f"RabbitMQ refused call {message.message_id} on queue {message.queue_name!r} "
        f"(refused for {refused_for:.1f}s: is the queue at its length limit?); it was not sent"
    )

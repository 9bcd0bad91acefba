"""The RabbitMQ flavours dispatch runs on: classic queues, or quorum queues for a cluster.

Both ack cheaply and park long delays in wait queues (:mod:`dispatch.brokers.delays`);
the quorum flavour also declares the calls queue and its ``.DQ``/``.XQ`` as
replicated quorum queues with a delivery limit.

Both also make every wait on RabbitMQ end.  A node under a memory or disk
alarm *blocks* publishers: it stops reading their sockets, and a publish waits
for its confirm for as long as the alarm lasts.  pika's
``blocked_connection_timeout`` drops such a connection after ``blocked_timeout``
seconds; the broker's channel then raises :class:`~dispatch.errors.PublishBlocked`
at once -- dramatiq's ``enqueue`` would otherwise try again on a fresh
connection, blocked in turn, six times over.  In a worker that error is also
a dramatiq connection error (:class:`BlockedConnectionClosed`), so a delayed
message whose promotion was not confirmed is redelivered, never acked.  A short connect timeout
(``connect_timeout``) makes a first try at a silent address fail fast too.  They build on
:class:`dispatch.upstream.HookedRabbitmqBroker`, which holds the private
dramatiq steps they change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
import pika.exceptions
from dramatiq.errors import ConnectionClosed

from ..cluster import describe_nodes
from ..errors import PublishBlocked
from ..redaction import install_log_redaction
from ..upstream import HookedRabbitmqBroker, reset_connection
from .delays import DelayParking

#: What to do about a blocked publisher: the one sentence every PublishBlocked starts with.
BLOCKED_ADVICE = (
    "RabbitMQ blocks publishers: a memory or disk alarm (rabbitmqctl status / the management UI); "
    "free memory/disk or raise the watermark"
)


class BlockedConnectionClosed(PublishBlocked, ConnectionClosed):
    """PublishBlocked as the broker raises it: also dramatiq's ``ConnectionClosed``, which is what it is.

    The connection is gone (pika dropped it after ``blocked_timeout``), and a
    worker must treat it so.  Its ``.DQ`` consumer thread promotes every due
    delayed message -- a scheduled retry, a ``send_in()``, a flow-control
    postponement -- with ``broker.enqueue`` (dramatiq's
    ``ConsumerThread.handle_delayed_messages``), and acks the ``.DQ`` copy only
    after that publish returns.  For a ``BrokerConnectionError`` the thread
    starts its consumer afresh *and drops its in-memory delay queue*: nothing
    was acked, RabbitMQ redelivers every message it held, each is promoted again
    once the alarm clears.  Any other error makes it log a traceback and restart
    with the old delay queue kept: messages redelivered anyway, published
    twice, whose acks then fail ("not in known tags").  A caller still catches
    it as PublishBlocked (``send()`` re-raises it naming the call); the worker
    threads' own re-enqueues (retries, postponements, claims) handle any error.
    """


def quorum_arguments(delivery_limit: int | None = None) -> dict[str, Any]:
    """The arguments of a dispatch quorum queue; the calls queue and its ``.DQ`` also get ``delivery_limit``.

    ``x-dead-letter-strategy: at-least-once`` (RabbitMQ >= 3.10): the move to
    the dead-letter target is confirmed by it, so nothing dead-lettered is
    lost with a node (RabbitMQ's default for quorum queues is at-most-once);
    it requires ``x-overflow: reject-publish``, which only matters under a
    length limit and is what dispatch reports as ``PublishRefused``.
    """
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    if delivery_limit is not None:
        arguments["x-delivery-limit"] = delivery_limit
    arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    return arguments


class ClassicRabbitmqBroker(HookedRabbitmqBroker):
    """dramatiq's RabbitMQ broker with cheap acks, long delays parked (``delay_parking``) and waits that end.

    ``blocked_timeout``: seconds a publish waits while RabbitMQ blocks publishers
    before it raises PublishBlocked; ``connect_timeout``: seconds one try to
    open a connection may take (pika's ``socket_timeout``).
    """

    def __init__(
        self,
        *,
        delay_parking: DelayParking | None = None,
        blocked_timeout: float | None = None,
        connect_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        install_log_redaction(self.logger.name)  # dramatiq names it after the class: dramatiq.broker.<class>
        self.delay_parking = delay_parking
        self.blocked_timeout = blocked_timeout
        for node in self.parameters if isinstance(self.parameters, list) else [self.parameters]:
            node.blocked_connection_timeout = blocked_timeout
            if connect_timeout is not None:
                node.socket_timeout = connect_timeout

    @property
    def channel(self) -> Any:
        """This thread's channel (dramatiq's), whose publishes raise PublishBlocked when RabbitMQ blocks them."""
        return _BlockAwareChannel(self, HookedRabbitmqBroker.channel.fget(self))  # type: ignore[attr-defined]

    @channel.deleter
    def channel(self) -> None:
        HookedRabbitmqBroker.channel.fdel(self)  # type: ignore[attr-defined]

    def blocked(self) -> BlockedConnectionClosed:
        """The error for a publish RabbitMQ blocked until ``blocked_timeout`` ran out (the connection is gone)."""
        return BlockedConnectionClosed(
            f"{BLOCKED_ADVICE}. RabbitMQ at {describe_nodes(self.parameters)} confirmed nothing for "
            f"{self.blocked_timeout or 0:g}s (DISPATCH_SEND_TIMEOUT)"
        )

    def park(self, message: dramatiq.Message) -> bool:
        parking = self.delay_parking
        return parking is not None and parking.should_park(message) and parking.park(self, message)


class _BlockAwareChannel:
    """A channel whose ``basic_publish`` turns pika's blocked-connection timeout into PublishBlocked.

    Everything else goes to the channel itself.  PublishBlocked is not one of
    the pika errors dramatiq's ``enqueue`` retries on a new connection, so it
    ends the publish; the dead connection is dropped first, as ``enqueue``
    would.
    """

    def __init__(self, broker: ClassicRabbitmqBroker, channel: Any) -> None:
        self._broker = broker
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    def basic_publish(self, *args: Any, **kwargs: Any) -> None:
        try:
            self._channel.basic_publish(*args, **kwargs)
        except pika.exceptions.ConnectionBlockedTimeout:
            reset_connection(self._broker)
            raise self._broker.blocked() from None


class QuorumRabbitmqBroker(ClassicRabbitmqBroker):
    """Declares the queue and its ``.DQ``/``.XQ`` companions as quorum queues.

    Quorum queues are replicated across a RabbitMQ cluster (Raft), so a
    node's loss loses no call.  They are always durable and keep
    dead-lettering and per-queue message TTL (RabbitMQ >= 3.10).  On top of
    dramatiq's arguments the calls queue and ``.DQ`` get
    :func:`quorum_arguments`, with ``x-delivery-limit``
    (``DISPATCH_DELIVERY_LIMIT``, RabbitMQ >= 3.8): a call redelivered that
    many times -- a worker crashing on it again and again -- is dead-lettered
    to ``.XQ`` instead of coming back forever.

    An existing queue cannot change its arguments (nor its type): one
    declared before these arguments is used as it is, with a warning naming
    the policy that gives it the same behaviour.
    """

    def __init__(self, *, delivery_limit: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delivery_limit = delivery_limit

    def queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return quorum_arguments(self.delivery_limit)

    def dead_letter_arguments(self, queue_name: str) -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def declare_or_keep(self, name: str, declare: Callable[[], Any]) -> Any:
        """Declare ``name`` with our arguments; a queue that exists with older ones is kept as it is."""
        try:
            return declare()
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406 or "inequivalent arg" not in str(exc.reply_text):
                raise
        self.reset_channel()  # a refused declare closes the channel
        self.logger.warning(
            "queue %r exists with arguments other than dispatch's (%s) and keeps its own. To change, delete it "
            "when empty or apply a policy: rabbitmqctl set_policy <name> '^%s$' "
            '\'{"delivery-limit": %d, "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}\' '
            "--apply-to queues",
            name,
            ", ".join(quorum_arguments(self.delivery_limit)),
            name.replace(".", "\\."),
            self.delivery_limit,
        )
        return self.channel.queue_declare(queue=name, passive=True)

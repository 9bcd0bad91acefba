"""Every reach into dramatiq's and pika's private parts, in one place.

dispatch leans on a few things its dependencies do not promise to keep:
a private consumer class, pika's asynchronous channel under the blocking
one, two private hooks of the RabbitMQ broker, the Redis backend's store
step, and the Prometheus middleware's database path.  Each is here, named,
with the reason it is worth the risk; ``tests/unit/test_upstream.py``
checks that every symbol still exists, and ``pyproject.toml`` pins dramatiq
and pika to the minor versions these were written against.  When an
upgrade breaks one, this file is the whole of what to read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pika.exceptions
from dramatiq import worker as dramatiq_worker
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import dq_name, xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import prometheus as dramatiq_prometheus
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel


def async_channel(channel: BlockingChannel) -> Channel:
    """pika's asynchronous channel underneath a blocking one.

    The blocking channel can only publish-and-wait or ack-and-flush; the
    asynchronous one queues frames, which is what pipelined confirms and
    cheap acks need.
    """
    return channel._impl


class QuickAckConsumer(_RabbitmqConsumer):
    """dramatiq's consumer, acking without a synchronous flush.

    dramatiq hands each ack to the consumer thread, which then calls the
    *blocking* channel's ``basic_ack``: that runs a whole turn of pika's I/O
    loop per message, 12 % of the worker's CPU in the profile
    (benchmarks/PROFILE.md).  The asynchronous channel underneath only
    queues the frame; the consumer loop, which never stops turning, writes
    it a moment later.  An ack lost with a dropped connection means a
    redelivery either way, so nothing about delivery changes.
    """

    def __next__(self) -> _RabbitmqMessage | None:
        """The next message, except a delayed one with a long wait left: that is parked, acked, and skipped.

        Parking (:mod:`dispatch.delays`) happens here, before dramatiq's
        worker puts the message on its in-memory delay queue, because from
        there dramatiq would hold it unacked until its time.  ``None`` is
        what the consumer returns when nothing arrived, so the worker just
        asks again.
        """
        message = super().__next__()
        parking = self.broker.delay_parking
        if (
            message is not None
            and parking is not None
            and parking.should_park(message)
            and parking.park(self.broker, message)
        ):
            self.ack(message)
            return None
        return message

    def ack(self, message: _RabbitmqMessage) -> None:
        try:
            self.known_tags.remove(message._tag)
        except KeyError:
            self.logger.warning("Failed to ack message: not in known tags.")
            return
        try:
            self.connection.add_callback_threadsafe(partial(async_channel(self.channel).basic_ack, message._tag))
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            raise ConnectionClosed(exc) from None


class QuickAckRabbitmqBroker(RabbitmqBroker):
    """dramatiq's RabbitMQ broker with :class:`QuickAckConsumer`.

    ``delay_parking`` (a :class:`dispatch.delays.DelayParking`, set by
    :func:`dispatch.broker.build_broker`) makes its consumers park long delays.
    """

    delay_parking: Any = None

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return QuickAckConsumer


class QuorumRabbitmqBroker(QuickAckRabbitmqBroker):
    """Declares the queue and its ``.DQ``/``.XQ`` companions as quorum queues.

    Quorum queues are replicated across a RabbitMQ cluster (Raft), so a
    node's loss loses no call.  They are always durable and keep
    dead-lettering and per-queue message TTL (RabbitMQ >= 3.10).  On top of
    dramatiq's arguments the calls queue and ``.DQ`` get:

    * ``x-delivery-limit`` (``DISPATCH_DELIVERY_LIMIT``, RabbitMQ >= 3.8): a
      call redelivered that many times -- a worker crashing on it again and
      again -- is dead-lettered to ``.XQ`` instead of coming back forever;
    * ``x-dead-letter-strategy: at-least-once`` (RabbitMQ >= 3.10): the move
      to ``.XQ`` is confirmed by the target, so a dead letter survives a
      node's loss (RabbitMQ's default for quorum queues is at-most-once);
      it requires ``x-overflow: reject-publish``, which only matters under a
      length limit and is what dispatch reports as ``PublishRefused``.

    An existing queue cannot change its arguments (nor its type): one
    declared before these arguments is used as it is, with a warning naming
    the policy that gives it the same behaviour.  dramatiq builds queue
    arguments in two private methods, which is why this class lives here.
    """

    def __init__(self, *, delivery_limit: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delivery_limit = delivery_limit

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        return {**super()._build_queue_arguments(queue_name), **quorum_arguments(self.delivery_limit)}

    def _declare_queue(self, queue_name: str) -> Any:
        return self._declare_or_keep(queue_name, partial(super()._declare_queue, queue_name))

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self._declare_or_keep(dq_name(queue_name), partial(super()._declare_dq_queue, queue_name))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={"x-message-ttl": DEAD_MESSAGE_TTL, "x-queue-type": "quorum"},
        )

    def _declare_or_keep(self, name: str, declare: Callable[[], Any]) -> Any:
        """Declare ``name`` with our arguments; a queue that exists with older ones is kept as it is."""
        try:
            return declare()
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406 or "inequivalent arg" not in str(exc.reply_text):
                raise
        del self.channel  # a refused declare closes the channel
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


def quorum_arguments(delivery_limit: int) -> dict[str, Any]:
    """The arguments dispatch adds to a quorum calls queue (and its ``.DQ``)."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


class PipelinedRedisBackend(RedisBackend):
    """dramatiq's Redis backend, storing through a client of its own and without a MULTI/EXEC transaction.

    Writes go through ``write_client``, which has a socket timeout, while
    reads keep the blocking client.  The three commands still go in one
    round trip; the transaction only guarded against a reader between DEL
    and LPUSH, who would see the call as still pending, which it then was.
    ``_store`` is the backend's private write step.
    """

    def __init__(self, *, write_client: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write_client = write_client

    def _store(self, message_key: str, result: bytes, ttl: int) -> None:
        with self.write_client.pipeline(transaction=False) as pipe:
            pipe.delete(message_key)
            pipe.lpush(message_key, self.encoder.encode(result))
            pipe.pexpire(message_key, ttl)
            pipe.execute()


def tune_worker() -> None:
    """Make dramatiq's worker (in this process) fit dispatch; called by :mod:`dispatch.tasks`, the worker's entry.

    * It recognises only dramatiq's own ``Results`` class, so with
      :class:`~dispatch.durability.DurableResults` it would log "returned a
      value ... you haven't added the Results middleware" for every call:
      subclasses count too.
    * It waits 3 s before restarting a consumer and 5 s before retrying an
      ack on a dead connection; on a RabbitMQ cluster that is most of a
      node failover, so 1 s each.
    * It logs a WARNING "Message ... was skipped." for every skipped message;
      a call postponed by flow control (:mod:`dispatch.flow`) is skipped each
      time it waits, which is routine, so that line is dropped for those.
    """
    dramatiq_worker.has_results_middleware = lambda broker: any(isinstance(m, Results) for m in broker.middleware)
    dramatiq_worker.CONSUMER_RESTART_DELAY_SECS = 1.0
    dramatiq_worker.POST_PROCESS_MESSAGE_RETRY_DELAY_SECS = 1.0
    skip_log = logging.getLogger("dramatiq.worker.WorkerThread")
    if not any(isinstance(f, _PostponedSkips) for f in skip_log.filters):
        skip_log.addFilter(_PostponedSkips())


class _PostponedSkips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (record.msg == "Message %s was skipped." and getattr(message, "options", {}).get("postponed"))


def set_prometheus_db_path(path: str) -> None:
    """Point dramatiq's Prometheus middleware at ``path`` (its module-level ``DB_PATH``, read at boot)."""
    dramatiq_prometheus.DB_PATH = path

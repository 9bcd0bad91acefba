"""Broker wiring: RabbitMQ with publisher confirms, Redis results, and the call log.

Clients and workers build the same broker from the same settings, so a
handle created in one process can read an outcome stored by another.

``stub://`` for the broker or results URL swaps in dramatiq's in-memory
StubBroker / StubBackend.  That is what the embedded demo and
:mod:`dispatch.testing` use when no RabbitMQ or Redis can be reached; it is
never what an integration test runs against.
"""

from __future__ import annotations

import logging
from functools import partial

import dramatiq
import pika.exceptions
import redis
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import CurrentMessage, Middleware, default_middleware
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend, StubBackend

from .publisher import BrokerUnavailable, PublishRefused  # noqa: F401 -- documented here before publisher.py
from .settings import Settings

ACTOR_NAME = "http_dispatch"

call_log = logging.getLogger("dispatch.calls")


class CallLog(Middleware):
    """One INFO line per finished call: its id, method and URL, and the outcome.

    Operators grep worker logs by message id; dramatiq's own lines name the
    actor but not the outcome, so this is the line that says what happened.
    """

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name != ACTOR_NAME:
            return
        url, method = message.args[0], message.args[1]
        if exception is None:
            call_log.info("call %s %s %s processed: %r", message.message_id, method, url, result)
        elif isinstance(exception, dramatiq.Retry):
            call_log.info(
                "call %s %s %s scheduled for delivery in %gs: %s",
                message.message_id,
                method,
                url,
                exception.delay / 1000,
                exception,
            )
        else:
            call_log.info(
                "call %s %s %s failed: %s: %s",
                message.message_id,
                method,
                url,
                type(exception).__name__,
                exception,
            )


def results_backend(settings: Settings) -> StubBackend | RedisBackend:
    """The store for outcomes named by ``DISPATCH_RESULTS_URL``."""
    if settings.results_url.startswith("stub:"):
        return StubBackend()
    # redis-py 8 defaults to a 5 s socket timeout, which cuts dramatiq's
    # blocking BRPOPLPUSH short for any res.get(timeout=...) above 5 s.
    # Connecting is still bounded; the wait itself is bounded by Redis.
    client = redis.Redis.from_url(
        settings.results_url,
        socket_timeout=None,
        socket_connect_timeout=10,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return _RedisResults(client=client, namespace="dispatch", use_namespace_prefix_keys=True)


class _RedisResults(RedisBackend):
    """dramatiq's Redis backend, storing without a MULTI/EXEC transaction.

    The three commands still go in one round trip.  The transaction only
    guarded against a reader between DEL and LPUSH, who would see the call
    as still pending, which it then was.
    """

    def _store(self, message_key: str, result: bytes, ttl: int) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(message_key)
            pipe.lpush(message_key, self.encoder.encode(result))
            pipe.pexpire(message_key, ttl)
            pipe.execute()


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker with dramatiq's default middleware plus results, current message and call log."""
    middleware = [m() for m in default_middleware] + [
        CurrentMessage(),
        Results(backend=results_backend(settings), result_ttl=int(settings.result_ttl * 1000)),
        CallLog(),
    ]
    if settings.broker_url.startswith("stub:"):
        return StubBroker(middleware=middleware)
    from .metrics import metrics_middleware  # lazy: importing it sets up dramatiq's Prometheus directory

    middleware += metrics_middleware()  # [] unless DISPATCH_METRICS_PORT or DISPATCH_METRICS=1 is set
    broker_class = QuorumRabbitmqBroker if settings.queue_type == "quorum" else DispatchRabbitmqBroker
    return broker_class(url=settings.broker_url, confirm_delivery=True, middleware=middleware)


class _QuickAckConsumer(_RabbitmqConsumer):
    """dramatiq's consumer, acking without a synchronous flush.

    dramatiq hands each ack to the consumer thread, which then calls the
    *blocking* channel's ``basic_ack``: that runs a whole turn of pika's I/O
    loop per message, 12 % of the worker's CPU in the profile
    (benchmarks/PROFILE.md).  The asynchronous channel underneath only
    queues the frame; the consumer loop, which never stops turning, writes
    it a moment later.  An ack lost with a dropped connection means a
    redelivery either way, so nothing about delivery changes.
    """

    def ack(self, message: _RabbitmqMessage) -> None:
        try:
            self.known_tags.remove(message._tag)
        except KeyError:
            self.logger.warning("Failed to ack message: not in known tags.")
            return
        try:
            self.connection.add_callback_threadsafe(partial(self.channel._impl.basic_ack, message._tag))
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            raise ConnectionClosed(exc) from None


class DispatchRabbitmqBroker(RabbitmqBroker):
    """dramatiq's RabbitMQ broker with :class:`_QuickAckConsumer`."""

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return _QuickAckConsumer


class QuorumRabbitmqBroker(DispatchRabbitmqBroker):
    """Declares the queue and its ``.DQ``/``.XQ`` companions as quorum queues.

    Quorum queues are replicated across a RabbitMQ cluster (Raft), so a
    node's loss loses no call.  They are always durable and keep
    dead-lettering and per-queue message TTL (RabbitMQ >= 3.10).  An
    existing classic queue cannot change type: delete it (or use a new
    ``DISPATCH_QUEUE``) when switching.
    """

    def _build_queue_arguments(self, queue_name):
        return {**super()._build_queue_arguments(queue_name), "x-queue-type": "quorum"}

    def _declare_xq_queue(self, queue_name):
        return self.channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={"x-message-ttl": DEAD_MESSAGE_TTL, "x-queue-type": "quorum"},
        )

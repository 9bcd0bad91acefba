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

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import xq_name
from dramatiq.middleware import CurrentMessage, Middleware, default_middleware
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend, StubBackend

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
    return RedisBackend(client=client, namespace="dispatch", use_namespace_prefix_keys=True)


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
    broker_class = QuorumRabbitmqBroker if settings.queue_type == "quorum" else RabbitmqBroker
    return broker_class(url=settings.broker_url, confirm_delivery=True, middleware=middleware)


class QuorumRabbitmqBroker(RabbitmqBroker):
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

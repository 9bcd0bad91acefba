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
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
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
    return RabbitmqBroker(url=settings.broker_url, confirm_delivery=True, middleware=middleware)

"""The broker: RabbitMQ with publisher confirms, the results store, and dispatch's middleware.

Clients and workers build the same broker from the same settings, so a
handle created in one process can read an outcome stored by another.  It is
built once per process, on first use, by :func:`dispatch.wiring.get_broker`.

``stub://`` as the broker URL swaps in dramatiq's in-memory StubBroker.
That is what the embedded demo and :mod:`dispatch.testing` use when no
RabbitMQ or Redis can be reached; it is never what an integration test
runs against.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries, default_middleware

from . import tracing
from .cluster import broker_urls
from .delays import DelayParking
from .durability import DurableResults, DurableRetries
from .middleware import CallLog, PoolSizing, SkipCancelled
from .settings import Settings
from .store import call_states, flow_control, results_backend
from .upstream import QuickAckRabbitmqBroker, QuorumRabbitmqBroker


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker with dramatiq's default middleware (Retries made durable) plus current message, tracing
    (with the ``otel`` extra), results, call log, flow control, cancellation and pool sizing.

    ``broker.call_states`` is where calls' scheduled/started/cancelled states live
    (:mod:`dispatch.states`); ``broker.flow_control`` enforces the destinations file's
    limits and breakers (:mod:`dispatch.flow`; ``None`` without any, or without Redis);
    RabbitMQ brokers also park long delays in wait queues (:mod:`dispatch.delays`).
    """
    backend = results_backend(settings)
    states = call_states(backend, settings)
    flow = flow_control(backend, settings)
    middleware = [DurableRetries() if m is Retries else m() for m in default_middleware] + [
        CurrentMessage(),
        *([tracing.Tracing()] if tracing.enabled() else []),  # first: its span covers the call, waits and skips too
        DurableResults(
            backend=backend, result_ttl=int(settings.result_ttl * 1000), patience=settings.results_store_patience
        ),
        CallLog(),
        *([flow] if flow else []),  # before SkipCancelled: a call waiting for its host can still be cancelled
        SkipCancelled(states),
        PoolSizing([backend.client, backend.write_client] if hasattr(backend, "write_client") else []),
    ]
    if settings.broker_url.startswith("stub:"):
        broker = StubBroker(middleware=middleware)
        broker.call_states = states
        broker.flow_control = flow
        return broker
    quorum = settings.queue_type == "quorum"
    broker_class = QuorumRabbitmqBroker if quorum else QuickAckRabbitmqBroker
    options = {"delivery_limit": settings.delivery_limit} if quorum else {}
    broker = broker_class(url=broker_urls(settings.broker_url), confirm_delivery=True, middleware=middleware, **options)
    broker.delay_parking = DelayParking(settings.delay_hold_max, quorum)
    broker.call_states = states
    broker.flow_control = flow
    return broker

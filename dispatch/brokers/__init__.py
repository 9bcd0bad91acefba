"""The broker: RabbitMQ with publisher confirms, in the flavour the settings ask for.

Clients and workers build the same broker from the same settings, so a
handle created in one process can read an outcome stored by another.  It
is built once per process, on first use, by :func:`dispatch.runtime.get_runtime`.

``stub://`` as the broker URL (:attr:`Settings.stub_broker`) swaps in
dramatiq's in-memory StubBroker.  That is what the embedded demo and
:mod:`dispatch.testing` use when no RabbitMQ or Redis can be reached; it
is never what an integration test runs against.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.stub import StubBroker

from ..cluster import broker_urls
from ..settings import Settings
from .delays import DelayParking
from .rabbitmq import ClassicRabbitmqBroker, QuorumRabbitmqBroker, quorum_arguments


def build_broker(settings: Settings, middleware: Sequence[dramatiq.Middleware]) -> dramatiq.Broker:
    """The broker the settings name, with ``middleware`` (:func:`dispatch.middleware.default_middleware`)."""
    if settings.stub_broker:
        return StubBroker(middleware=list(middleware))
    urls = broker_urls(settings.broker_url)
    if settings.queue_type == "quorum":
        return QuorumRabbitmqBroker(
            url=urls,
            confirm_delivery=True,
            middleware=list(middleware),
            delivery_limit=settings.delivery_limit,
            delay_parking=DelayParking(settings.delay_hold_max, quorum_arguments()),
        )
    return ClassicRabbitmqBroker(
        url=urls,
        confirm_delivery=True,
        middleware=list(middleware),
        delay_parking=DelayParking(settings.delay_hold_max),
    )

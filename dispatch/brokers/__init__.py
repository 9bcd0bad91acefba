"""The broker: RabbitMQ with publisher confirms, in the flavour the settings ask for.

Clients and workers build the same broker from the same settings, so a
handle created in one process can read an outcome stored by another.  It
is built once per process, on first use, by :func:`dispatch.runtime.get_runtime`.

``stub://`` as the broker URL (:attr:`Settings.stub_broker`) swaps in
dramatiq's in-memory StubBroker.  That is what the embedded demo and
:mod:`dispatch.testing` use when no RabbitMQ or Redis can be reached; it
is never what an integration test runs against.

Every publish of the broker ends within ``DISPATCH_SEND_TIMEOUT`` while
RabbitMQ blocks publishers (:mod:`dispatch.brokers.rabbitmq`) -- ``send()``'s,
the gateway's and the worker's own re-enqueues alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from ..cluster import broker_urls
from ..settings import Settings
from .delays import DelayParking
from .rabbitmq import ClassicRabbitmqBroker, QuorumRabbitmqBroker, quorum_arguments

#: Seconds one try to connect to a RabbitMQ node may take: a silent address is reported fast,
#: then tried again for as long as the caller's patience lasts (``DISPATCH_SEND_TIMEOUT``).
CONNECT_TIMEOUT = 2.0

#: The shortest wait for a blocked publish, whatever ``DISPATCH_SEND_TIMEOUT`` says (0 would drop a
#: connection the moment RabbitMQ announces a block).
MIN_BLOCKED_TIMEOUT = 1.0


def build_broker(settings: Settings, middleware: Sequence[dramatiq.Middleware]) -> dramatiq.Broker:
    """The broker the settings name, with ``middleware`` (:func:`dispatch.middleware.default_middleware`)."""
    if settings.stub_broker:
        return StubBroker(middleware=list(middleware))
    common: dict[str, Any] = {
        "url": broker_urls(settings.broker_url),
        "confirm_delivery": True,
        "middleware": list(middleware),
        "blocked_timeout": max(settings.send_timeout, MIN_BLOCKED_TIMEOUT),
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if settings.queue_type == "quorum":
        return QuorumRabbitmqBroker(
            **common,
            delivery_limit=settings.delivery_limit,
            delay_parking=DelayParking(settings.delay_hold_max, quorum_arguments()),
        )
    return ClassicRabbitmqBroker(**common, delay_parking=DelayParking(settings.delay_hold_max))

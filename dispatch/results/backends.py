"""Where outcomes are kept: the results backend named by ``DISPATCH_RESULTS_URL``.

A worker stores each call's outcome here and any process holding the
call's id reads it back (:class:`~dispatch.result.CallResult`), so clients
and workers must build the same store from the same settings.

``stub://`` swaps in dramatiq's in-memory StubBackend: that is what the
embedded demo and :mod:`dispatch.testing` use, never an integration test.
"""

from __future__ import annotations

import redis
from dramatiq.results.backends import RedisBackend, StubBackend

from .flow import FlowControl
from .settings import Settings
from .states import MemoryCallStates, RedisCallStates
from .upstream import PipelinedRedisBackend

#: Key prefix of every outcome (``dispatch:<message key>``).
NAMESPACE = "dispatch"


class CallResultsBackend(PipelinedRedisBackend):
    """Outcomes keyed by call id alone, so a handle made from an id (``CallResult.from_id``) finds any call."""

    def build_message_key(self, message: object) -> str:
        return f"{NAMESPACE}:result:{message.message_id}"


def call_states(backend: StubBackend | RedisBackend, settings: Settings) -> RedisCallStates | MemoryCallStates:
    """Where calls' scheduled/started/cancelled states live: beside the outcomes."""
    if isinstance(backend, CallResultsBackend):
        return RedisCallStates(backend.write_client, int(settings.result_ttl * 1000), NAMESPACE)
    return MemoryCallStates()


def flow_control(backend: StubBackend | RedisBackend, settings: Settings) -> FlowControl | None:
    """Per-host limits and breakers, shared by every worker through the results store's Redis.

    None when the destinations file sets no limit, or outcomes are kept in memory (``stub://``).
    """
    destinations = settings.destinations
    limited = destinations.defaults.limited or any(d.limited for d in destinations.hosts.values())
    if not limited or not isinstance(backend, CallResultsBackend):
        return None
    return FlowControl(destinations, backend.write_client, NAMESPACE)


def results_backend(settings: Settings) -> StubBackend | RedisBackend:
    """The store for outcomes named by ``DISPATCH_RESULTS_URL``."""
    if settings.results_url.startswith("stub:"):
        return StubBackend()
    # Readers block: redis-py 8 defaults to a 5 s socket timeout, which would
    # cut dramatiq's blocking BRPOPLPUSH short for any res.get(timeout=...)
    # above 5 s, so the reading client has none (Redis bounds the wait).
    # Writers must not block: a hung Redis would hold a worker thread for
    # hours, so every write has DISPATCH_RESULTS_WRITE_TIMEOUT.
    reader = redis.Redis.from_url(
        settings.results_url,
        socket_timeout=None,
        socket_connect_timeout=10,
        socket_keepalive=True,
        health_check_interval=30,
    )
    writer = redis.Redis.from_url(
        settings.results_url,
        socket_timeout=settings.results_write_timeout,
        socket_connect_timeout=settings.results_write_timeout,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return CallResultsBackend(client=reader, write_client=writer, namespace=NAMESPACE, use_namespace_prefix_keys=True)

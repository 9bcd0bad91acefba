"""Where outcomes are kept: the results backend named by ``DISPATCH_RESULTS_URL``, in Redis or in memory.

A worker stores each call's outcome here and any process holding the
call's id reads it back (:class:`~dispatch.result.CallResult`), so clients
and workers must build the same store from the same settings.  dramatiq's
``ResultBackend`` is the interface; the two implementations sit side by
side: :class:`CallResultsBackend` (Redis) and :class:`MemoryResultsBackend`
(``stub://``: the embedded demo and :mod:`dispatch.testing`, never an
integration test).
"""

from __future__ import annotations

from typing import Any

import dramatiq
import redis
from dramatiq.results.backends import StubBackend

from ..settings import Settings
from ..upstream import PipelinedRedisBackend

#: Key prefix of every outcome (``dispatch:<message key>``), and of the call states and flow keys beside them.
NAMESPACE = "dispatch"


class CallResultsBackend(PipelinedRedisBackend):
    """Outcomes in Redis, keyed by call id alone, so a handle made from an id (``CallResult.from_id``) finds any call.

    ``client`` blocks (readers wait on Redis); ``write_client`` has a timeout
    and is also what call states and flow control use.
    """

    write_client: redis.Redis

    def build_message_key(self, message: dramatiq.Message[Any]) -> str:
        return f"{NAMESPACE}:result:{message.message_id}"

    def forget(self, message: dramatiq.Message) -> None:
        """Drop the call's outcome (a replayed call then waits for its new one)."""
        self.client.delete(self.build_message_key(message))


class MemoryResultsBackend(StubBackend):
    """Outcomes in this process's memory (dramatiq's StubBackend)."""

    def forget(self, message: dramatiq.Message) -> None:
        self.results.pop(self.build_message_key(message), None)


#: A results store of dispatch's: either implementation.
ResultsBackend = CallResultsBackend | MemoryResultsBackend


def results_backend(settings: Settings) -> ResultsBackend:
    """The store for outcomes named by ``DISPATCH_RESULTS_URL``."""
    if settings.results_url.startswith("stub:"):
        return MemoryResultsBackend()
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


def redis_clients(results: ResultsBackend) -> list[Any]:
    """The Redis clients a store holds (none in memory): the pools a worker sizes at boot."""
    return [results.client, results.write_client] if isinstance(results, CallResultsBackend) else []

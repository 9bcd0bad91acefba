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
from dramatiq.results.backends import RedisBackend, StubBackend
from dramatiq.results.result import wrap_exception, wrap_result

from ..redis_connect import BLOCKING_KEEPALIVE, Replication, connect
from ..settings import Settings
from .states import CallStates, MemoryCallStates, RedisCallStates, record_keys

#: Key prefix of every call record (``dispatch:{<id>}:...``), and of the flow keys beside them.
NAMESPACE = "dispatch"


class _RecordedOutcomes:
    """Outcomes stored by the call record's FINISH script (:mod:`.states`): never replacing one stored before."""

    states: CallStates

    def build_message_key(self, message: dramatiq.Message[Any]) -> str:
        return record_keys(NAMESPACE, message.message_id)[1]

    def store_result(self, message: dramatiq.Message[Any], result: Any, ttl: int) -> None:
        self.states.finish(message.message_id, wrap_result(result), ttl, replays=message.options.get("replays", 0))

    def store_exception(self, message: dramatiq.Message[Any], exception: Exception, ttl: int) -> None:
        outcome = wrap_exception(exception)
        self.states.finish(message.message_id, outcome, ttl, replays=message.options.get("replays", 0))

    def forget(self, message: dramatiq.Message[Any]) -> None:
        """Drop the call's outcome and state before a replay publishes it again (``options["replays"]``, counted
        by the replay): the replay is performed, not acked as done, and no outcome from before it is stored."""
        self.states.forget(message.message_id, message.options.get("replays", 0))


class CallResultsBackend(_RecordedOutcomes, RedisBackend):
    """Outcomes in Redis, keyed by call id alone, so a handle made from an id (``CallResult.from_id``) finds any call.

    ``client`` blocks (readers wait on Redis: dramatiq's reads); ``write_client``
    has a timeout and is what call records (``states``, every write) and flow control use.
    """

    states: RedisCallStates

    def __init__(self, *, write_client: redis.Redis, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write_client = write_client


class MemoryResultsBackend(_RecordedOutcomes, StubBackend):
    """Outcomes in this process's memory (dramatiq's StubBackend)."""

    states: MemoryCallStates


#: A results store of dispatch's: either implementation.
ResultsBackend = CallResultsBackend | MemoryResultsBackend


def results_backend(settings: Settings) -> ResultsBackend:
    """The store for outcomes named by ``DISPATCH_RESULTS_URL``, with its call records (``.states``)."""
    ttl_ms = int(settings.result_ttl * 1000)
    if settings.stub_results:
        memory = MemoryResultsBackend()
        memory.states = MemoryCallStates(memory, ttl_ms, NAMESPACE)
        return memory
    # Readers block: redis-py 8 defaults to a 5 s socket timeout, which would
    # cut dramatiq's blocking BRPOPLPUSH short for any res.get(timeout=...)
    # above 5 s, so the reading client has none (Redis bounds the wait).
    # Writers must not block: a hung Redis would hold a worker thread for
    # hours, so every write has DISPATCH_RESULTS_WRITE_TIMEOUT.
    # Behind Sentinel (redis+sentinel://) both find the master anew after a failover; a blocked reader
    # notices a vanished master by keep-alive (redis_connect.BLOCKING_KEEPALIVE).
    reader = connect(
        settings.results_url,
        sentinel_password=settings.sentinel_password or None,
        socket_timeout=None,
        socket_connect_timeout=10,
        socket_keepalive=True,
        socket_keepalive_options=BLOCKING_KEEPALIVE,
        health_check_interval=30,
    )
    writer = connect(
        settings.results_url,
        sentinel_password=settings.sentinel_password or None,
        socket_timeout=settings.results_write_timeout,
        socket_connect_timeout=settings.results_write_timeout,
        socket_keepalive=True,
        health_check_interval=30,
    )
    backend = CallResultsBackend(
        client=reader, write_client=writer, namespace=NAMESPACE, use_namespace_prefix_keys=True
    )
    replication = Replication.for_store(
        writer, settings.results_url, settings.redis_replicas, settings.results_write_timeout
    )
    backend.states = RedisCallStates(writer, ttl_ms, backend.encoder, NAMESPACE, replication)
    return backend


def redis_clients(results: ResultsBackend) -> list[Any]:
    """The Redis clients a store holds (none in memory): the pools a worker sizes at boot."""
    return [results.client, results.write_client] if isinstance(results, CallResultsBackend) else []

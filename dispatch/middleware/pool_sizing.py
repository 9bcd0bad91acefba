"""Connection pools sized to the worker's thread count, which is known only once the worker boots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq

from ..transport import Transport

#: Redis connections a worker process keeps beyond one per worker thread (consumers, heartbeats, cancels).
REDIS_HEADROOM = 16


class PoolSizing(dramatiq.Middleware):
    """Grows the Redis pools and the HTTP transport's pools to the worker's thread count at boot.

    Every worker thread holds one Redis connection while it stores an outcome
    and one HTTP connection per host while it calls.  redis-py 8 caps a pool
    at 100 connections and then *raises* ("Too many connections"), and
    urllib3 keeps 32 per host and closes the rest after use: a worker with
    128 threads lost outcomes to the first and churned connections with the
    second.  Pools never shrink.
    """

    def __init__(self, redis_clients: Sequence[Any], transport: Transport | None = None) -> None:
        self.redis_clients = list(redis_clients)
        self.transport = transport

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threads = worker.worker_threads
        for client in self.redis_clients:
            pool = client.connection_pool
            pool.max_connections = max(pool.max_connections, threads + REDIS_HEADROOM)
        if self.transport is not None:
            self.transport.size_pools(threads)

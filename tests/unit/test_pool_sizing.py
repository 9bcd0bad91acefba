"""The connection pools follow the worker's thread count (known only when the worker boots)."""

from __future__ import annotations

import types

import redis

from dispatch.middleware import REDIS_HEADROOM, PoolSizing
from dispatch.transport import MIN_POOL_SIZE, Transport


def test_redis_pools_grow_to_one_connection_per_thread_at_worker_boot():
    clients = [redis.Redis.from_url("redis://127.0.0.1:1/0") for _ in range(2)]  # nothing connects
    broker, transport = types.SimpleNamespace(), Transport()
    PoolSizing(clients, transport).before_worker_boot(broker, types.SimpleNamespace(worker_threads=200))
    assert [c.connection_pool.max_connections for c in clients] == [200 + REDIS_HEADROOM] * 2
    assert transport.pools.connection_pool_kw["maxsize"] == 200  # the HTTP pools follow the thread count too
    PoolSizing(clients, transport).before_worker_boot(broker, types.SimpleNamespace(worker_threads=4))
    assert clients[0].connection_pool.max_connections == 200 + REDIS_HEADROOM  # never shrinks


def test_http_pools_keep_one_connection_per_thread_and_host():
    assert Transport(pool_size=150).pools.connection_pool_kw["maxsize"] == 150
    assert Transport().pools.connection_pool_kw["maxsize"] == MIN_POOL_SIZE
    assert Transport(pool_size=4).pools.connection_pool_kw["maxsize"] == MIN_POOL_SIZE

"""Replay stores: remembering accepted ``webhook-id`` values so a signed request runs once.

A :class:`ReplayStore` is the Protocol; :class:`MemoryReplayStore` (one process) and
:class:`RedisReplayStore` (shared by processes and hosts) implement it side by side.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import DispatchError


class ReplayStoreError(DispatchError):
    """The replay store cannot say whether an id is new (Redis unreachable, memory store full)."""


class ReplayStore(Protocol):
    """Remembers accepted ``webhook-id`` values for a while."""

    def add(self, msg_id: str, ttl: float) -> bool:
        """Remember ``msg_id`` for ``ttl`` seconds; False if it is already remembered.

        Atomic: of two concurrent adds of one id, exactly one returns True.
        Raises ReplayStoreError when it cannot tell.
        """
        ...


class MemoryReplayStore:
    """Accepted ids in this process's memory, each until it expires; at most ``max_entries`` at once.

    Thread-safe.  When full of unexpired ids it refuses new ones (ReplayStoreError, a 503) rather
    than forget one that could still be replayed.  Only correctly signed requests are recorded, so
    only a sender holding the secret can fill it: size it for your peak rate times
    ``2 * tolerance`` seconds, or use :class:`RedisReplayStore`.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, msg_id = heapq.heappop(self._heap)
            if self._expiry.get(msg_id) == expiry:
                del self._expiry[msg_id]

    def add(self, msg_id: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            self._purge(now)
            if msg_id in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                raise ReplayStoreError(f"the replay store is full ({self.max_entries} ids within the window)")
            expiry = now + ttl
            self._expiry[msg_id] = expiry
            heapq.heappush(self._heap, (expiry, msg_id))
            return True


class RedisReplayStore:
    """Accepted ids in Redis (``SET key token NX PX ttl``), shared by every process that uses the same keys.

    ``client`` is a ``redis.Redis`` (or use :meth:`from_url`); ``prefix`` namespaces the keys, so
    several groups of receivers that must not see each other's ids can share one database.
    ``replicas``: how many replicas must hold an id before the request runs (``WAIT`` in the same round
    trip as the ``SET``, as the results store's writes); an id too few replicas confirmed is let go again
    and the request answered 503, so the sender's retry is not refused as a replay.
    """

    def __init__(self, client: Any, prefix: str = "dispatch:receiver:seen:", replicas: int = 0) -> None:
        from ..redis_connect import WAIT_TIMEOUT_MS, Replication  # redis-py: loaded by the stores that use it

        self.client = client
        self.prefix = prefix
        self.replication = Replication(client, replicas, WAIT_TIMEOUT_MS)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        sentinel_password: str | None = None,
        prefix: str = "dispatch:receiver:seen:",
        replicas: int = 0,
    ) -> RedisReplayStore:
        """A store on the Redis at ``url``: ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``
        (then ``sentinel_password`` is the sentinels' own); a write waits at most 5 s, then the receiver answers 503.
        """
        from ..redis_connect import connect

        client = connect(url, sentinel_password=sentinel_password, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, prefix, replicas)

    def add(self, msg_id: str, ttl: float) -> bool:
        from redis.exceptions import RedisError

        from ..redis_connect import NotReplicated

        key, token = self.prefix + msg_id, uuid.uuid4().hex
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.set(key, token, nx=True, px=max(1, int(ttl * 1000)))
                return bool(self.replication.execute(pipe)[0])
        except NotReplicated as exc:
            with contextlib.suppress(RedisError):  # held by the master alone: let it go (only if it is ours)
                self.client.eval(_LET_GO, 1, key, token)
            raise ReplayStoreError(f"the replay store could not replicate the id: {exc}") from None
        except RedisError as exc:
            raise ReplayStoreError(f"the replay store is unreachable: {exc}") from None


_LET_GO = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


#: The store of every Receiver built without ``replay_store``: one per process, so Receivers
#: serving different functions of one app (Flask, Django) refuse each other's replays too.
DEFAULT_REPLAY_STORE = MemoryReplayStore()

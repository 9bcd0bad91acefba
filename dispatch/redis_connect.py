"""Redis clients from a URL, a single server or a Sentinel-watched master: the one place they are made.

Every use of Redis -- outcomes, call states, flow control, the receivers'
replay store, the gateway, the CLI -- takes its client from :func:`connect`
(or :func:`connect_async`), so a ``redis+sentinel://`` URL works wherever a
``redis://`` one does::

    redis+sentinel://[:password@]host:port[,host:port...]/<service_name>[/<db>]
    rediss+sentinel://...   (TLS to the master and replicas)

The password in the URL is the master's (``requirepass``); the sentinels'
own password, if they have one, comes from ``DISPATCH_SENTINEL_PASSWORD``.
redis-py's :class:`~redis.sentinel.Sentinel` asks the sentinels for the
master on every new connection, so after a failover the next command finds
the new master by itself.

What a lost master means for the code using these clients lives here too:

* :class:`Replication` -- a write counts only once ``DISPATCH_REDIS_REPLICAS``
  replicas hold it: ``WAIT`` in the same round trip as the write, its answer
  checked (:class:`NotReplicated` otherwise);
* :data:`FAILOVER_ERRORS` -- what a failover (or a full master) looks like to
  a client: a failed write, retried within the writer's patience;
  :class:`Outage` rides them out for a waiting reader;
* :func:`eviction_policy` -- a ``maxmemory-policy`` that may drop outcomes, states and leases.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.exceptions
import redis.sentinel

T = TypeVar("T")

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379

#: TCP keep-alive for a client that blocks with no socket timeout (a waiting ``get()``): a master whose
#: machine vanished without closing the connection is noticed within about 10 s, not the kernel's 2 hours.
BLOCKING_KEEPALIVE: dict[int, int] = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}


@dataclasses.dataclass(frozen=True)
class SentinelAddress:
    """Where a Sentinel-watched master is found: the sentinels, the service name, the database."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The parts of a ``redis+sentinel://`` URL; ValueError saying what is wrong (never repeating a password)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"a Sentinel URL starts with {' or '.join(s + '://' for s in SENTINEL_SCHEMES)}")
    location, _, path = rest.partition("/")
    userinfo, at, hosts = location.rpartition("@")
    if not at:
        hosts, userinfo = location, ""
    password = unquote(userinfo.partition(":")[2]) or None
    sentinels = tuple(_host_port(part) for part in hosts.split(","))
    service_name, _, db_text = path.strip("/").partition("/")
    if not service_name:
        raise ValueError("a Sentinel URL names the master's service after the hosts: .../<service_name>[/<db>]")
    if db_text and not db_text.isdigit():
        raise ValueError(f"the database after the service name is a number, not {db_text!r}")
    return SentinelAddress(
        sentinels, unquote(service_name), int(db_text or 0), password, scheme.lower() == "rediss+sentinel"
    )


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        host, port = port, str(DEFAULT_SENTINEL_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"each sentinel is host:port, not {text.strip()!r}")
    return host, int(port)


def connect(url: str, *, sentinel_password: str | None = None, **options: Any) -> redis.Redis:
    """A client for ``url``: ``redis://``, ``rediss://``, ``unix://`` or a Sentinel URL; ``options`` as redis-py's."""
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    sentinel = redis.sentinel.Sentinel(
        address.sentinels,
        sentinel_kwargs=_sentinel_options(sentinel_password, options),
        **_master_options(address, options),
    )
    return sentinel.master_for(address.service_name)


def connect_async(url: str, *, sentinel_password: str | None = None, **options: Any) -> redis.asyncio.Redis:
    """:func:`connect` for asyncio code (``CallResult.aget``)."""
    if not is_sentinel_url(url):
        return redis.asyncio.Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    sentinel = redis.asyncio.sentinel.Sentinel(
        address.sentinels,
        sentinel_kwargs=_sentinel_options(sentinel_password, options),
        **_master_options(address, options),
    )
    return sentinel.master_for(address.service_name)


def _master_options(address: SentinelAddress, options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "db": address.db, "password": address.password, **({"ssl": True} if address.tls else {})}


def _sentinel_options(password: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The sentinels are asked with the same timeouts as the master, and their own password."""
    timeouts: dict[str, Any] = {
        name: options[name] for name in ("socket_timeout", "socket_connect_timeout") if name in options
    }
    if timeouts.get("socket_timeout") is None:  # a reader's blocking client: the sentinels still answer at once
        timeouts["socket_timeout"] = timeouts.get("socket_connect_timeout") or 10
    return {**timeouts, **({"password": password} if password else {})}


class NotReplicated(redis.exceptions.RedisError):
    """The master took a write but fewer replicas than required confirmed it in time: not a write that counts."""


#: What a lost master (or one out of memory) looks like to a client: a failed write or read, to be tried
#: again -- refused connections, timeouts, a demoted master (read-only), a replica not yet a master
#: (MASTERDOWN), no master known to the sentinels, a write not replicated, and a write refused for memory.
FAILOVER_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.OutOfMemoryError,
    NotReplicated,
)


#: The longest a write waits for its replicas before it counts as failed (and is tried again).
WAIT_TIMEOUT_MS = 1000


def store_wait_timeout_ms(write_timeout: float) -> int:
    """How long the results store's writes wait for their replicas (:meth:`Replication.for_store`)."""
    return min(WAIT_TIMEOUT_MS, int(write_timeout * 500))


class Replication:
    """How many replicas must hold a write before it is acknowledged, and the ``WAIT`` that makes sure.

    ``replicas`` None is ``auto``: 1 behind Sentinel; for a plain URL, 1 if the
    server has a replica connected when first asked (``INFO replication``), else 0.
    """

    def __init__(self, client: Any, replicas: int | None, timeout_ms: int, *, sentinel: bool = False) -> None:
        self.client = client
        self.timeout_ms = max(int(timeout_ms), 1)
        self._needed = replicas if replicas is not None else (1 if sentinel else None)
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, client: Any, url: str, replicas: int | None, write_timeout: float) -> Replication:
        """The results store's (``DISPATCH_RESULTS_URL``, ``DISPATCH_REDIS_REPLICAS``): WAIT gives up after 1 s,
        or half of ``DISPATCH_RESULTS_WRITE_TIMEOUT`` if shorter, well before the write's own timeout."""
        return cls(client, replicas, store_wait_timeout_ms(write_timeout), sentinel=is_sentinel_url(url))

    def needed(self) -> int:
        """The replicas a write waits for (``auto`` on a plain URL: read once from the server)."""
        if self._needed is None:
            with self._lock:
                if self._needed is None:
                    self._needed = min(1, _connected_replicas(self.client))
        return self._needed

    def execute(self, pipe: Any) -> list[Any]:
        """``pipe.execute()`` with ``WAIT`` appended to the same round trip; NotReplicated if too few confirmed."""
        needed = self.needed()
        if not needed:
            return list(pipe.execute())
        pipe.execute_command("WAIT", needed, self.timeout_ms)
        *replies, confirmed = pipe.execute()
        if int(confirmed) < needed:
            raise NotReplicated(f"{confirmed} of {needed} replica(s) confirmed the write within {self.timeout_ms} ms")
        return replies


def _connected_replicas(client: Any) -> int:
    try:
        return int(client.info("replication").get("connected_slaves", 0))
    except redis.exceptions.ResponseError:  # INFO renamed or forbidden: no replica we can know of
        return 0


class Outage:
    """A reader riding out a lost master: each failure sleeps a little; after ``patience`` seconds of them, raise.

    ``clear()`` after a read that worked starts the count afresh.
    """

    def __init__(self, patience: float, pause: float = 0.2) -> None:
        self.patience = patience
        self.pause = pause
        self.since: float | None = None

    def failed(self, error: Exception) -> float:
        """Seconds to sleep before reading again; re-raises ``error`` once the outage outlasts the patience."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= self.patience:
            raise error
        return self.pause

    def clear(self) -> None:
        self.since = None


def eviction_policy(client: Any) -> str | None:
    """The server's ``maxmemory-policy`` unless it is ``noeviction``; None too if ``CONFIG`` is disabled or
    the server cannot be asked.

    Sidekiq warns for anything but ``noeviction`` because its jobs have no TTL, so ``volatile-*`` spares
    them; every key of dispatch's has a TTL (outcomes, records, leases), so a ``volatile-*`` policy evicts
    them as readily as ``allkeys-*`` does.
    """
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.exceptions.RedisError:
        return None
    policy = reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy")
    policy = policy.decode() if isinstance(policy, bytes) else policy
    return None if not policy or policy == "noeviction" else policy


def patiently(operation: Callable[[], T], patience: float) -> T:
    """``operation()``, tried again while it fails as a failover does (:data:`FAILOVER_ERRORS`), for up to
    ``patience`` seconds; then its last error is raised."""
    outage = Outage(patience)
    while True:
        try:
            return operation()
        except FAILOVER_ERRORS as error:
            time.sleep(outage.failed(error))


def eviction_warning(client: Any) -> str | None:
    """What to tell an operator whose Redis may evict dispatch's keys (Sidekiq's warning), or None."""
    policy = eviction_policy(client)
    if policy is None:
        return None
    return (
        f"Redis uses maxmemory-policy {policy}: when it runs out of memory it deletes outcomes, call states "
        "and leases without a word (a caller then waits for an outcome that is gone, a cancelled call may run). "
        "Set maxmemory-policy noeviction and size maxmemory for the outcomes kept (docs/scaling.md)"
    )

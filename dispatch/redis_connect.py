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
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import unquote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379


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

"""Sentinel URLs: parsed exactly, refused clearly (without repeating a password)."""

from __future__ import annotations

import pytest
import redis.sentinel

from dispatch.redis_connect import SentinelAddress, connect, is_sentinel_url, parse_sentinel_url


def test_a_full_sentinel_url() -> None:
    address = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/mymaster/3")
    assert address == SentinelAddress(
        (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26381)), "mymaster", 3, "s@cret", False
    )
    assert "s@cret" not in repr(address)


def test_defaults_and_tls() -> None:
    address = parse_sentinel_url("rediss+sentinel://sentinel-a,sentinel-b/cache")
    assert address.sentinels == (("sentinel-a", 26379), ("sentinel-b", 26379))
    assert (address.service_name, address.db, address.password, address.tls) == ("cache", 0, None, True)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://:pw@h:1", "names the master's service"),
        ("redis+sentinel://:pw@h:notaport/m", "each sentinel is host:port"),
        ("redis+sentinel://:pw@h:1/m/x", "is a number"),
        ("redis://h/0", "starts with"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        parse_sentinel_url(url)
    assert "pw" not in str(raised.value)


def test_connect_builds_a_sentinel_managed_client_without_connecting() -> None:
    assert is_sentinel_url("REDIS+SENTINEL://h/m") and not is_sentinel_url("redis://h")
    client = connect("redis+sentinel://h:1/m/2", sentinel_password="sp", socket_timeout=3)
    assert isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
    assert client.connection_pool.connection_kwargs["db"] == 2
    assert client.connection_pool.connection_kwargs["socket_timeout"] == 3

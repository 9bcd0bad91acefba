"""Sentinel URLs: parsed exactly, refused clearly (without repeating a password)."""

from __future__ import annotations

import pytest
import redis.exceptions
import redis.sentinel

from dispatch.errors import ConfigurationError
from dispatch.redis_connect import (
    FAILOVER_ERRORS,
    NotReplicated,
    Outage,
    Replication,
    SentinelAddress,
    connect,
    eviction_policy,
    eviction_warning,
    is_sentinel_url,
    parse_sentinel_url,
    patiently,
)
from dispatch.settings import Settings


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


class _Pipe:
    """A pipeline stand-in: records commands, answers ``replies`` on execute."""

    def __init__(self, *replies: object) -> None:
        self.commands: list[tuple[object, ...]] = []
        self.replies = list(replies)

    def execute_command(self, *args: object) -> None:
        self.commands.append(args)

    def execute(self) -> list[object]:
        return self.replies


def test_a_write_counts_once_enough_replicas_confirm_it_in_the_same_round_trip() -> None:
    replication = Replication(client=None, replicas=1, timeout_ms=1000)
    pipe = _Pipe("OK", 1)
    assert replication.execute(pipe) == ["OK"]
    assert pipe.commands == [("WAIT", 1, 1000)]
    with pytest.raises(NotReplicated, match="0 of 1 replica"):
        replication.execute(_Pipe("OK", 0))
    assert NotReplicated in FAILOVER_ERRORS  # a failed write, retried like any other
    unwaited = _Pipe("OK")
    assert Replication(client=None, replicas=0, timeout_ms=1000).execute(unwaited) == ["OK"]
    assert unwaited.commands == []


def test_auto_replicas_follow_the_topology() -> None:
    assert Replication(client=None, replicas=None, timeout_ms=1, sentinel=True).needed() == 1

    class Server:
        def __init__(self, replicas: int) -> None:
            self.asked = 0
            self.replicas = replicas

        def info(self, section: str) -> dict[str, int]:
            self.asked += 1
            return {"connected_slaves": self.replicas}

    alone, replicated = Server(0), Server(2)
    assert Replication(alone, None, 1).needed() == 0
    auto = Replication(replicated, None, 1)
    assert (auto.needed(), auto.needed(), replicated.asked) == (1, 1, 1)  # read once, at first use
    store = Replication.for_store(None, "redis+sentinel://h/m", None, write_timeout=5)
    assert (store.needed(), store.timeout_ms) == (1, 1000)
    assert Replication.for_store(None, "redis://h", 2, write_timeout=0.5).timeout_ms == 250


def test_an_outage_is_ridden_out_for_its_patience_then_raised() -> None:
    error = redis.exceptions.ConnectionError("gone")
    outage = Outage(patience=60, pause=0.2)
    assert outage.failed(error) == 0.2
    outage.clear()
    with pytest.raises(redis.exceptions.ConnectionError):
        Outage(patience=0).failed(error)
    failures = [redis.exceptions.ReadOnlyError("demoted")]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert patiently(flaky, 5) == "done"
    with pytest.raises(redis.exceptions.ResponseError):  # not a failover: raised at once
        patiently(lambda: (_ for _ in ()).throw(redis.exceptions.ResponseError("WRONGTYPE")), 5)


def test_a_sentinel_url_is_checked_at_start_up_naming_the_setting_not_the_password() -> None:
    with pytest.raises(ConfigurationError, match="DISPATCH_RESULTS_URL") as raised:
        Settings.from_env({"DISPATCH_RESULTS_URL": "redis+sentinel://:hunter2@h:1,h:x/dispatch"})
    assert "hunter2" not in str(raised.value) and "each sentinel is host:port" in str(raised.value)
    settings = Settings.from_env(
        {"DISPATCH_RESULTS_URL": "rediss+sentinel://h:1/dispatch/3", "DISPATCH_SENTINEL_PASSWORD": "s3ntinel-pw"}
    )
    assert (settings.redis_replicas, settings.sentinel_password) == (None, "s3ntinel-pw")
    assert "s3ntinel-pw" not in repr(settings)
    assert Settings.from_env({"DISPATCH_REDIS_REPLICAS": "2"}).redis_replicas == 2
    with pytest.raises(ConfigurationError, match="DISPATCH_REDIS_REPLICAS"):
        Settings.from_env({"DISPATCH_REDIS_REPLICAS": "many"})


def test_an_evicting_policy_is_named_and_a_closed_config_is_not_second_guessed() -> None:
    class Server:
        def __init__(self, policy: object) -> None:
            self.policy = policy

        def config_get(self, name: str) -> dict[bytes, object]:
            if isinstance(self.policy, Exception):
                raise self.policy
            return {b"maxmemory-policy": self.policy}

    assert eviction_policy(Server(b"noeviction")) is None
    assert eviction_policy(Server(b"volatile-lru")) == "volatile-lru"  # every key of dispatch's has a TTL
    assert eviction_policy(Server(redis.exceptions.ResponseError("unknown command 'CONFIG'"))) is None
    assert "noeviction" in (eviction_warning(Server(b"allkeys-lru")) or "")

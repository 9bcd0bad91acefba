"""The transport's bounds: a name lookup inside the attempt's deadline, pools and proxy managers that do not pile up.

A resolver that hangs is a monkeypatched ``socket.getaddrinfo`` that waits
until the test lets it go; the hosts that pile up are closed ports on
127.0.0.1 (each a pool of its own, each attempt refused) and names sent
through a proxy (the test's server).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from dispatch.policy import DestinationPolicy
from dispatch.retries import AttemptFailed
from dispatch.transport import Request, Transport, _connections


@pytest.fixture
def hanging_resolver(monkeypatch) -> Iterator[str]:
    """A name whose lookup hangs for 30 s (both the transport's and the policy's), let go after the test."""
    name, release, real = "hangs.example", threading.Event(), socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == name:
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "the resolver gave up")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield name
    release.set()


@pytest.mark.parametrize("policy", [DestinationPolicy(), DestinationPolicy(deny_private=True)], ids=["open", "policy"])
def test_a_name_lookup_that_hangs_ends_at_the_attempts_deadline(hanging_resolver, policy):
    request = Request(f"http://{hanging_resolver}/hook", "GET", {}, timeout=1, max_response_bytes=1000)
    started = time.monotonic()
    with pytest.raises(AttemptFailed, match="timed out after 1s"):
        Transport(policy).attempt(request)
    assert time.monotonic() - started < 1.8


def test_every_address_a_name_has_is_tried_in_turn(monkeypatch, server):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "two.example":  # an address nothing listens on first, then the server's
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", closed_port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, port, *args, **kwargs)

    closed_port = _closed_ports(1)[0]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    url = f"http://two.example:{server.server_address[1]}/hook"
    answer = Transport().attempt(Request(url, "GET", {}, timeout=5, max_response_bytes=100_000))
    assert json.loads(answer.body)["retval"]["headers"]["host"] == f"two.example:{server.server_address[1]}"


def test_pools_stay_bounded_and_the_ones_evicted_are_closed(monkeypatch):
    closed: list[int | None] = []
    real_close = urllib3.HTTPConnectionPool.close

    def close(pool: urllib3.HTTPConnectionPool) -> None:
        closed.append(pool.port)
        real_close(pool)

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "close", close)
    monkeypatch.setattr(_connections, "MAX_POOLS", 3)
    transport = Transport()
    ports = _closed_ports(7)
    for port in ports:  # nothing listens: each attempt is refused, its pool made all the same
        with pytest.raises(AttemptFailed, match="refused"):
            transport.attempt(Request(f"http://127.0.0.1:{port}/", "GET", {}, timeout=2, max_response_bytes=1000))
    assert len(transport.pools.pools) == 3
    assert closed == ports[:4]


def test_one_proxy_manager_per_proxy_however_many_hosts_go_through_it(monkeypatch, server):
    made: list[urllib3.ProxyManager] = []

    class CountedProxyManager(urllib3.ProxyManager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(urllib3, "ProxyManager", CountedProxyManager)
    monkeypatch.setenv("http_proxy", server.base)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setattr(_connections, "MAX_ROUTES", 5)
    transport = Transport()
    for number in range(20):
        request = Request(f"http://host-{number}.invalid/hook", "GET", {}, timeout=5, max_response_bytes=100_000)
        target = json.loads(transport.attempt(request).body)["retval"]["target"]
        assert target == f"http://host-{number}.invalid/hook"
    assert len(made) == 1
    assert transport.connections.managers() == [transport.pools, made[0]]
    assert transport.connections.route.cache_info().currsize == 5


def _closed_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 nothing listens on (each bound, then let go)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports

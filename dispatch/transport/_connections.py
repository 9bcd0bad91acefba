"""Where a request is sent: one thread-safe pool manager per process, proxies, and pools pinned by the policy.

* **urllib3, not requests.**  One thread-safe ``PoolManager`` keeps
  connections alive for every worker thread.  requests sits on the same
  urllib3 but, per request, re-reads proxy and netrc settings and rebuilds
  its request: that cost half the actor's CPU (benchmarks/PROFILE.md).
  What it did for us is done once: environment proxies (per origin) and
  its CA bundle here, credentials in the URL when the wire request is built.
* **With a destination policy**, the connection goes to the address the
  policy checked (:meth:`DestinationPolicy.pinned_pool`) and no proxy is
  used: a proxy would connect on our behalf, unchecked.  Its DNS lookup is
  bounded by the attempt's deadline (:func:`._deadline.within_deadline`).
* **Bounded.**  A manager keeps at most ``MAX_POOLS`` pools (one per origin,
  or per checked address), the least recently used closed when a new one
  needs the room; there is one proxy manager per proxy, and the route each
  origin takes is remembered for the last ``MAX_ROUTES`` origins only.
"""

from __future__ import annotations

import functools
import os
import urllib.request
from typing import Any, TypeVar
from urllib.parse import unquote

import certifi
import urllib3
from urllib3.util import make_headers, parse_url

from ..policy import DestinationPolicy
from ._deadline import watched, within_deadline
from ._wire import WireRequest

#: Connections are kept alive per origin, at least ``MIN_POOL_SIZE`` and one per worker thread
#: (``Transport(pool_size=...)``): with fewer, the threads beyond it open a connection per call
#: and close it after ("Connection pool is full"), which costs a TCP (and TLS) handshake each.
MIN_POOL_SIZE = 32

#: Connection pools a manager keeps (one per origin, or per address the policy checked); the least recently
#: used is closed to make room for another.
MAX_POOLS = 100

#: Origins whose route (direct, or through which proxy) is remembered.
MAX_ROUTES = 1000

M = TypeVar("M", bound=urllib3.PoolManager)

_POOL_OPTIONS = {"block": False, "retries": False, "cert_reqs": "CERT_REQUIRED"}


class Connections:
    """Opens a wire request's connection: direct, through the environment's proxy, or pinned by the policy."""

    def __init__(self, policy: DestinationPolicy, pool_size: int = MIN_POOL_SIZE) -> None:
        self.policy = policy
        self.options: dict[str, Any] = {
            **_POOL_OPTIONS,
            "num_pools": MAX_POOLS,
            "maxsize": max(MIN_POOL_SIZE, pool_size),
            "ca_certs": _ca_bundle(),
        }
        self.pools = _bounded(urllib3.PoolManager(**self.options))
        # A proxy from the environment would connect on our behalf, unchecked: with a policy, none is used.
        self.proxies: dict[str, str] = {} if policy.active else urllib.request.getproxies()
        self._proxy_managers: dict[str, urllib3.ProxyManager] = {}  # at most one per proxy the environment names
        self.route = functools.lru_cache(maxsize=MAX_ROUTES)(self._route)

    def managers(self) -> list[urllib3.PoolManager]:
        """Every pool manager made so far: the direct one, then one per proxy used."""
        return [self.pools, *self._proxy_managers.values()]

    def size(self, connections_per_host: int) -> None:
        """Keep at least ``connections_per_host`` connections per origin in pools made from now on; never shrinks."""
        size = max(self.pools.connection_pool_kw["maxsize"], connections_per_host)
        self.options["maxsize"] = self.pools.connection_pool_kw["maxsize"] = size

    def open(self, wire: WireRequest, timeout: urllib3.Timeout) -> urllib3.BaseHTTPResponse:
        """Send ``wire`` and return the response with its body unread."""
        target = wire.target
        if self.policy.active:
            pool, host = within_deadline(self.policy.pinned_pool, self.pools, target)
            return pool.urlopen(
                wire.method,
                target.request_uri,
                body=wire.body,
                headers={**wire.headers, "Host": host},
                assert_same_host=False,
                timeout=timeout,
                redirect=False,
                retries=False,
                preload_content=False,
            )
        manager = self.route(target.scheme or "", target.host or "")
        return manager.urlopen(
            wire.method,
            wire.url,
            body=wire.body,
            headers=wire.headers,
            timeout=timeout,
            redirect=False,
            retries=False,
            preload_content=False,
        )

    def _route(self, scheme: str, host: str) -> urllib3.PoolManager:
        """The direct pool manager, or a proxy manager when the environment names a proxy for this origin.

        Decided once per scheme and host (:attr:`route` remembers the last
        ``MAX_ROUTES``): looking the proxy variables up on every request is
        what made requests slow here (benchmarks/PROFILE.md).
        """
        proxy = self.proxies.get(scheme)
        # proxy_bypass_environment is urllib's reading of no_proxy (requests uses it too); typeshed omits it.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        return self._proxy_manager(proxy) if proxy and not bypass(host, self.proxies) else self.pools

    def _proxy_manager(self, proxy: str) -> urllib3.ProxyManager:
        manager = self._proxy_managers.get(proxy)
        if manager is None:
            auth = parse_url(proxy).auth
            proxy_headers = make_headers(proxy_basic_auth=unquote(auth)) if auth else None
            manager = _bounded(urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **self.options))
            manager = self._proxy_managers.setdefault(proxy, manager)
        return manager


def _bounded(manager: M) -> M:
    """``manager`` watched by the attempts' deadlines, closing the pool it evicts to keep ``MAX_POOLS``.

    urllib3 2 drops an evicted pool without closing it: its idle connections
    would stay open until the garbage collector found them.  A connection in
    use when its pool is closed is closed as it is given back.
    """
    manager.pools.dispose_func = _close_pool
    watched(manager)
    return manager


def _close_pool(pool: urllib3.HTTPConnectionPool) -> None:
    pool.close()


def _ca_bundle() -> str:
    """The CA certificates requests would use: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()

"""Where a request is sent: one thread-safe pool manager per process, proxies, and pools pinned by the policy.

* **urllib3, not requests.**  One thread-safe ``PoolManager`` keeps
  connections alive for every worker thread.  requests sits on the same
  urllib3 but, per request, re-reads proxy and netrc settings and rebuilds
  its request: that cost half the actor's CPU (benchmarks/PROFILE.md).
  What it did for us is done once: environment proxies (per origin) and
  its CA bundle here, credentials in the URL when the wire request is built.
* **With a destination policy**, the connection goes to the address the
  policy checked (:meth:`DestinationPolicy.pinned_pool`) and no proxy is
  used: a proxy would connect on our behalf, unchecked.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any
from urllib.parse import unquote

import certifi
import urllib3
from urllib3.util import make_headers, parse_url

from ..policy import DestinationPolicy
from ._deadline import watched
from ._wire import WireRequest

#: Connections are kept alive per origin, at least ``MIN_POOL_SIZE`` and one per worker thread
#: (``Transport(pool_size=...)``): with fewer, the threads beyond it open a connection per call
#: and close it after ("Connection pool is full"), which costs a TCP (and TLS) handshake each.
MIN_POOL_SIZE = 32

_POOL_OPTIONS = {"num_pools": 100, "block": False, "retries": False, "cert_reqs": "CERT_REQUIRED"}


class Connections:
    """Opens a wire request's connection: direct, through the environment's proxy, or pinned by the policy."""

    def __init__(self, policy: DestinationPolicy, pool_size: int = MIN_POOL_SIZE) -> None:
        self.policy = policy
        self.options: dict[str, Any] = {**_POOL_OPTIONS, "maxsize": max(MIN_POOL_SIZE, pool_size)}
        self.options["ca_certs"] = _ca_bundle()
        self.pools = watched(urllib3.PoolManager(**self.options))
        # A proxy from the environment would connect on our behalf, unchecked: with a policy, none is used.
        self.proxies: dict[str, str] = {} if policy.active else urllib.request.getproxies()
        self._managers: dict[tuple[str, str], urllib3.PoolManager] = {}

    def size(self, connections_per_host: int) -> None:
        """Keep at least ``connections_per_host`` connections per origin in pools made from now on; never shrinks."""
        size = max(self.pools.connection_pool_kw["maxsize"], connections_per_host)
        self.options["maxsize"] = self.pools.connection_pool_kw["maxsize"] = size

    def open(self, wire: WireRequest, timeout: urllib3.Timeout) -> urllib3.BaseHTTPResponse:
        """Send ``wire`` and return the response with its body unread."""
        target = wire.target
        if self.policy.active:
            pool, host = self.policy.pinned_pool(self.pools, target)
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
        manager = self._manager(target.scheme or "", target.host or "")
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

    def _manager(self, scheme: str, host: str) -> urllib3.PoolManager:
        """The direct pool manager, or a proxy manager when the environment names a proxy for this origin.

        Decided once per scheme and host: looking the proxy variables up on
        every request is what made requests slow here (benchmarks/PROFILE.md).
        """
        manager = self._managers.get((scheme, host))
        if manager is None:
            proxy = self.proxies.get(scheme)
            # proxy_bypass_environment is urllib's reading of no_proxy (requests uses it too); typeshed omits it.
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
            if proxy and not bypass(host, self.proxies):
                auth = parse_url(proxy).auth
                proxy_headers = make_headers(proxy_basic_auth=unquote(auth)) if auth else None
                manager = watched(urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **self.options))
            else:
                manager = self.pools
            manager = self._managers.setdefault((scheme, host), manager)
        return manager


def _ca_bundle() -> str:
    """The CA certificates requests would use: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()

"""Destination policy: where a call may go (server-side request forgery defence).

A service that makes requests to URLs its users supply can be turned
against its own network: ``http://169.254.169.254/`` (cloud credentials),
``http://localhost:6379/``, an admin panel on ``10.0.0.5``.  With
``DISPATCH_DENY_PRIVATE=1`` every call's host is resolved, every address is
checked, and the connection is made **to the address that was checked** --
not to whatever a second DNS lookup returns a millisecond later (DNS
rebinding).  TLS certificates are still verified against the host *name*,
and each redirect goes through the same check.

``DISPATCH_ALLOWED_HOSTS`` lists hosts (``hooks.internal``), addresses or
networks (``10.1.0.0/16``) that are allowed even though they are private.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import urllib3
from urllib3.util import Url

from .errors import DestinationRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Metadata services of the big clouds; most are link-local already, not all.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


def address_rule(address: IPAddress) -> str | None:
    """The rule that refuses ``address``, or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in CLOUD_METADATA:
        return "cloud-metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def parse_allowed(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split ``DISPATCH_ALLOWED_HOSTS`` entries into host names and networks; ValueError if one is malformed."""
    names, networks = set(), []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if "/" in entry or not all(label and len(label) < 64 for label in entry.rstrip(".").split(".")):
                raise ValueError(f"{entry!r} is neither a host name, an address nor a network") from None
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


@dataclasses.dataclass(frozen=True)
class DestinationPolicy:
    """Which destinations calls may reach; ``active`` is False when nothing is restricted."""

    deny_private: bool = False
    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @property
    def active(self) -> bool:
        return self.deny_private

    def resolve(self, url: str) -> str:
        """The checked address to connect to for ``url``; DestinationRefused if the policy forbids it.

        Raises OSError when the name does not resolve (a transport failure:
        DNS may be back on the next attempt).
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if host.lower() in self.allowed_names:
            return str(addresses[0])
        for address in addresses:
            rule = address_rule(address)
            if rule and not any(address in network for network in self.allowed_networks):
                raise DestinationRefused(
                    f"{url} refused: {host} resolves to {address}, a {rule} address "
                    "(DISPATCH_DENY_PRIVATE; allow it with DISPATCH_ALLOWED_HOSTS)"
                )
        return str(addresses[0])

    def pinned_pool(self, pools: urllib3.PoolManager, target: Url) -> tuple[urllib3.HTTPConnectionPool, str]:
        """A connection pool on the checked *address* of ``target``, and the ``Host`` header to send.

        TLS SNI (``server_hostname``) and certificate checks
        (``assert_hostname``) stay on the host *name*.  The pool is keyed by
        address and name, so a name that moves gets a new pool.
        """
        address = self.resolve(target.url)
        pool_kwargs = (
            {"server_hostname": target.host, "assert_hostname": target.host} if target.scheme == "https" else {}
        )
        pool = pools.connection_from_host(address, target.port, target.scheme, pool_kwargs=pool_kwargs)
        host = target.host if target.port is None else f"{target.host}:{target.port}"
        return pool, host

    def check(self, url: str) -> None:
        """Raise DestinationRefused (or OSError for an unknown host) if a call to ``url`` would be refused."""
        if self.active:
            self.resolve(url)

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

The URL is parsed once, by urllib3 (:func:`dispatch.urlsafety.parse_target`),
and that one parse is both checked here and connected to: a URL two
parsers would read differently cannot show the check one host and the
connection another.  An IPv6 address that embeds an IPv4 address (mapped,
SIIT, IPv4-compatible, NAT64, 6to4, Teredo, ISATAP) is judged by the IPv4
address it carries, so ``64:ff9b::127.0.0.1`` is loopback; site-local and
multicast addresses are refused too.  An allowed network matches both
forms: ``10.1.0.0/16`` admits ``::ffff:10.1.2.3``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Iterable

import urllib3
from urllib3.util import Url

from .errors import DestinationRefused
from .redaction import redact_url
from .urlsafety import parse_target, port_of

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Metadata services of the big clouds; most are link-local already, not all.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_LOW32 = 0xFFFFFFFF


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, if it is one of the forms that carry one.

    ``::ffff:a.b.c.d`` (mapped), ``::ffff:0:a.b.c.d`` (SIIT), ``::a.b.c.d``
    (IPv4-compatible), ``64:ff9b::a.b.c.d`` and ``64:ff9b:1::a.b.c.d`` (NAT64,
    the /96 layout), ``2002:AABB:CCDD::/48`` (6to4), Teredo's client and
    ISATAP's ``...:5efe:a.b.c.d``.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    number = int(address)
    low = ipaddress.IPv4Address(number & _LOW32)
    if address in _SIIT or address in _NAT64:
        return low
    if address in _IPV4_COMPATIBLE:
        return low if number > 1 else None  # :: and ::1 are IPv6's own unspecified and loopback
    if address in _NAT64_LOCAL and (number >> 32) & ((1 << 48) - 1) == 0:
        return low
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if (number >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP interface identifier
        return low
    return None


def address_rule(address: IPAddress) -> str | None:
    """The rule that refuses ``address``, or None if it is a public address."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        rule = address_rule(embedded)
        if rule:
            return rule
    if address in CLOUD_METADATA:
        return "cloud-metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address):
        if address in _UNIQUE_LOCAL:
            return "unique-local"
        if address in _SITE_LOCAL:
            return "site-local"
        if address in _NAT64_LOCAL and embedded is None:
            return "local-use NAT64"  # a layout other than /96: the IPv4 address is not where it can be judged
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def forms(address: IPAddress) -> tuple[IPAddress, ...]:
    """``address`` and the other form of the same host: the IPv4 it embeds, or an IPv4's mapped IPv6."""
    if isinstance(address, ipaddress.IPv4Address):
        return address, ipaddress.IPv6Address(0xFFFF00000000 | int(address))
    embedded = embedded_ipv4(address)
    return (address,) if embedded is None else (address, embedded)


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

    def allows(self, address: IPAddress) -> bool:
        """Whether ``address`` is in an allowed network, in either of its forms (see :func:`forms`)."""
        return any(form in network for form in forms(address) for network in self.allowed_networks)

    def resolve(self, target: Url | str) -> str:
        """The checked address to connect to for ``target``; DestinationRefused if the policy forbids it.

        ``target`` is the URL as urllib3 parsed it -- the parse the request
        is made from -- or a URL to parse so.  Raises OSError when the name
        does not resolve (a transport failure: DNS may be back on the next
        attempt).
        """
        if isinstance(target, str):
            url = target
            try:
                target = parse_target(url)
            except ValueError as exc:
                raise DestinationRefused(f"{redact_url(url)} refused: {exc}") from None
        host = (target.host or "").strip("[]").rstrip(".")
        port = port_of(target)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if host.lower() in self.allowed_names:
            return str(addresses[0])
        for address in addresses:
            rule = address_rule(address)
            if rule and not self.allows(address):
                raise DestinationRefused(
                    f"{redact_url(target.url)} refused: {host} resolves to {address}, a {rule} address "
                    "(DISPATCH_DENY_PRIVATE; allow it with DISPATCH_ALLOWED_HOSTS)"
                )
        return str(addresses[0])

    def pinned_pool(self, pools: urllib3.PoolManager, target: Url) -> tuple[urllib3.HTTPConnectionPool, str]:
        """A connection pool on the checked *address* of ``target``, and the ``Host`` header to send.

        TLS SNI (``server_hostname``) and certificate checks
        (``assert_hostname``) stay on the host *name*.  The pool is keyed by
        address and name, so a name that moves gets a new pool.
        """
        address, name = self.resolve(target), target.host or ""
        pool_kwargs = {"server_hostname": name, "assert_hostname": name} if target.scheme == "https" else {}
        pool = pools.connection_from_host(address, target.port, target.scheme, pool_kwargs=pool_kwargs)
        return pool, name if target.port is None else f"{name}:{target.port}"

    def check(self, url: str) -> None:
        """Raise DestinationRefused (or OSError for an unknown host) if a call to ``url`` would be refused."""
        if self.active:
            self.resolve(url)

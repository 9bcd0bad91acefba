"""Redirects within one attempt: the request a redirect asks for, and credentials that stay with their origin."""

from __future__ import annotations

from urllib.parse import urljoin

from urllib3.util import Url

from ..errors import DestinationRefused
from ..urlsafety import parse_target, port_of
from ._wire import WireRequest

#: Redirects followed within one attempt (each one re-checked by the destination policy).
MAX_REDIRECTS = 10

#: Headers that carry a credential (besides any ``webhook-*`` and ``*signature*`` header).
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "x-access-token"}
)


def redirected(wire: WireRequest, status: int, location: str) -> WireRequest:
    """The request a redirect asks for, as requests makes it.

    303, and 301/302 after a POST, become a GET without a body.  A
    redirect that leaves the origin (scheme, host and port) drops every
    credential: ``Authorization`` (from the URL's credentials, too),
    cookies, API-key headers and the ``webhook-*`` signature, which
    proves to any host that sees it that we sent it.  A Location that
    is ambiguous (see :func:`dispatch.urlsafety.check_url`) is refused.
    """
    joined = urljoin(wire.url, location)
    try:
        target = parse_target(joined)
    except ValueError as exc:
        raise DestinationRefused(f"redirect from {wire.url} to {location!r} refused: {exc}") from None
    target = target._replace(auth=None, fragment=None)
    method, body = wire.method, wire.body
    dropped: set[str] = set()
    if status == 303 or (status in (301, 302) and wire.method == "POST"):
        method, body = "GET", None
        dropped.add("content-type")
    leaves_origin = _origin(target) != _origin(wire.target)
    headers = {
        name: value
        for name, value in wire.headers.items()
        if name.lower() not in dropped and not (leaves_origin and _is_credential(name))
    }
    return WireRequest(method, target, body, headers)


def _origin(target: Url) -> tuple[str | None, str | None, int | None]:
    return target.scheme, (target.host or "").lower(), port_of(target)


def _is_credential(name: str) -> bool:
    name = name.lower()
    return name in _CREDENTIAL_HEADERS or name.startswith("webhook-") or "signature" in name

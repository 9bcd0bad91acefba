"""Redirects within one attempt: the request a redirect asks for; headers and bodies that stay with their origin.

A redirect that leaves the origin (scheme, host and port) is a request to a
host the endpoint chose, so what the old host was given stays with it:

* the headers **by provenance**: every header the old host's destinations
  entry added and the ``Authorization`` made from the URL's credentials
  (:attr:`WireRequest.origin_only`), whatever their names;
* the headers **by name** that carry a credential, from wherever they came
  (the call's own headers, a dispatcher's ``prepare`` hook):
  ``Authorization``, ``Proxy-Authorization``, cookies, the ``webhook-*``
  signature and any name with ``auth``, ``token``, ``key``, ``secret``,
  ``password``, ``session``, ``credential`` or ``signature`` in it --
  ``Idempotency-Key`` excepted, which is no credential and still deduplicates;
* **the body**: a redirect that would carry one to another origin (a 307 or
  308, or a 301/302 of a method other than POST) is refused
  (:class:`~dispatch.errors.DestinationRefused`, final, not retried).

The new host then gets what its own entry says: its headers, and a
signature made with its own ``signing_secret`` if it has one (never with
``DISPATCH_SIGNING_SECRET``: a signature is a proof any holder can replay).
A redirect within the origin keeps everything, its signature made again
with the same secrets for the new URL (and body).
"""

from __future__ import annotations

from urllib.parse import urljoin

from urllib3.util import Url

from ..destinations import Destinations
from ..errors import DestinationRefused
from ..redaction import redact_url
from ..urlsafety import parse_target, port_of
from ._wire import WireRequest, add_destination, sign

#: Redirects followed within one attempt (each one re-checked by the destination policy).
MAX_REDIRECTS = 10

#: Words that make a header name a credential's (besides the ``webhook-*`` signature headers).
_CREDENTIAL_WORDS = ("auth", "token", "key", "secret", "password", "cookie", "session", "credential", "signature")

#: Names with such a word that carry no credential.
_NOT_CREDENTIALS = frozenset({"idempotency-key"})


def redirected(
    wire: WireRequest, status: int, location: str, destinations: Destinations, call_id: str | None
) -> WireRequest:
    """The request a redirect asks for, as requests makes it, minus what stays with the origin.

    303, and 301/302 after a POST, become a GET without a body.  A
    Location that is ambiguous (see :func:`dispatch.urlsafety.check_url`)
    is refused, as is a body that would go to another origin.
    """
    joined = urljoin(wire.url, location)
    try:
        target = parse_target(joined)
    except ValueError as exc:
        raise DestinationRefused(
            f"redirect from {redact_url(wire.url)} to {redact_url(location)!r} refused: {redact_url(str(exc))}"
        ) from None
    target = target._replace(auth=None, fragment=None)
    method, body = wire.method, wire.body
    dropped: set[str] = set()
    if status == 303 or (status in (301, 302) and wire.method == "POST"):
        method, body = "GET", None
        dropped.add("content-type")
    if _origin(target) == _origin(wire.target):
        headers = {name: value for name, value in wire.headers.items() if name.lower() not in dropped}
        same = WireRequest(method, target, body, headers, wire.origin_only)
        sign(same, wire.signed_with, call_id)  # the old signature covers the old URL and body
        return same
    if body:
        raise DestinationRefused(
            f"redirect ({status}) from {redact_url(wire.url)} to {redact_url(target.url)} refused: "
            f"it would send the {method} body to another origin; call the new URL itself if it is meant"
        )
    dropped |= wire.origin_only
    headers = {
        name: value
        for name, value in wire.headers.items()
        if name.lower() not in dropped and not is_credential_header(name)
    }
    away = WireRequest(method, target, body, headers)
    destination = add_destination(away, destinations)
    sign(away, destination.signing_secrets or (), call_id)
    return away


def is_credential_header(name: str) -> bool:
    """Whether a header's name says it carries a credential (see the module's docstring)."""
    name = name.lower()
    if name in _NOT_CREDENTIALS:
        return False
    return name.startswith("webhook-") or any(word in name for word in _CREDENTIAL_WORDS)


def _origin(target: Url) -> tuple[str | None, str | None, int | None]:
    return target.scheme, (target.host or "").lower(), port_of(target)

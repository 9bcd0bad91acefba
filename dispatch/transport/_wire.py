"""The request as it goes on the wire: encoded, with its headers layered, shaped by the dispatcher, then signed.

:class:`WireRequest` is public: a dispatcher's :meth:`~dispatch.HttpDispatch.prepare`
hook receives one and may change it (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from importlib.metadata import version
from urllib.parse import unquote, urlencode

from urllib3.util import Url, make_headers

from .. import tracing
from ..destinations import Destination, Destinations
from ..errors import DestinationRefused, DispatchError
from ..redaction import redact_url
from ..signing import sign_request
from ..urlsafety import parse_target, port_of
from ..validation import Params
from ._models import Request

USER_AGENT = f"dispatch/{version('dispatch')}"

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


@dataclasses.dataclass
class WireRequest:
    """One request as sent: method, URL (query included, parsed once), body, headers.

    This is what a dispatcher's :meth:`~dispatch.HttpDispatch.prepare` hook
    receives and may change: ``headers`` (a dict), ``body`` (bytes or None),
    ``method``, or ``url`` (set it to a new string; the destination policy
    judges it when connecting, as it judges every URL).  ``origin_only``
    names (lower case) the headers that belong to this origin -- the URL's
    credentials and the destinations file's headers -- which a redirect to
    another origin drops, whatever their names (:mod:`._redirects`);
    ``signed_with`` holds the secrets of its signature, so a redirect within
    the origin is signed again, for its new URL and body.
    """

    method: str
    target: Url
    body: bytes | None
    headers: dict[str, str]
    origin_only: frozenset[str] = frozenset()
    signed_with: tuple[str, ...] = dataclasses.field(default=(), repr=False)

    @property
    def url(self) -> str:
        return self.target.url

    @url.setter
    def url(self, value: str) -> None:
        self.target = parse_destination(value)._replace(fragment=None)


#: A dispatcher's hook on the request about to be sent (:meth:`HttpDispatch.prepare`).
Shaper = Callable[[WireRequest], WireRequest]


def build_wire_request(
    request: Request, destinations: Destinations, signing_secrets: Sequence[str], shape: Shaper | None = None
) -> WireRequest:
    """The request exactly as it goes on the wire: encoded, shaped by ``shape``, then signed.

    Headers are layered: the worker's defaults, the call's own headers,
    the URL's credentials, then the destinations file's headers for the
    host (the operator's word wins; both marked ``origin_only``); ``traceparent`` (:mod:`dispatch.tracing`)
    and ``Idempotency-Key`` last, as the worker owns them.  ``shape`` (a
    dispatcher's :meth:`prepare` hook) sees the result and may change it;
    the signature is made after it, so it covers what is really sent.
    Signing happens on every attempt because
    the signature covers a timestamp: one made for the first attempt
    would be stale for a delivery scheduled hours later.
    """
    target, body = parse_destination(request.url), None
    headers = {**_HEADERS, **request.headers}
    if request.method == "GET":
        encoded = encode_params(request.params)
        if encoded:
            target = target._replace(query=f"{target.query}&{encoded}" if target.query else encoded)
    elif request.body_format == "json":
        body = json.dumps(request.params, separators=(",", ":"), ensure_ascii=False).encode()
        headers.setdefault("Content-Type", "application/json")
    else:
        body = encode_params(request.params).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    wire = WireRequest(request.method, target._replace(auth=None, fragment=None), body, headers)
    if target.auth:
        user, _, password = target.auth.partition(":")
        headers["Authorization"] = make_headers(basic_auth=f"{unquote(user)}:{unquote(password)}")["authorization"]
        wire.origin_only = frozenset({"authorization"})
    destination = add_destination(wire, destinations)
    tracing.inject(headers)  # traceparent: the endpoint's spans join the caller's trace
    if request.call_id:
        headers["Idempotency-Key"] = request.call_id
    origin_only, target = wire.origin_only, wire.target
    if shape is not None:
        wire = shape(wire)
        if not isinstance(wire, WireRequest):
            raise DispatchError(f"prepare() must return the request it was given, not {type(wire).__name__}")
        wire.origin_only |= origin_only  # a hook that built a request of its own keeps them bound too
    if wire.target is not target:  # the hook sent it elsewhere: that host's secret signs it
        destination = destinations.for_host(wire.target.host or "", port_of(wire.target))
    sign(wire, destination.signing_secrets or signing_secrets, request.call_id)
    return wire


def add_destination(wire: WireRequest, destinations: Destinations) -> Destination:
    """Add the headers of the entry for ``wire``'s host, marked ``origin_only``; return the entry."""
    destination = destinations.for_host(wire.target.host or "", port_of(wire.target))
    wire.headers.update(destination.headers)
    wire.origin_only |= {name.lower() for name in destination.headers}
    return destination


def sign(wire: WireRequest, secrets: Sequence[str], call_id: str | None) -> None:
    """Sign ``wire`` as it is now (its method, URL and body) with ``secrets``, if any and the call has an id."""
    if secrets and call_id:
        wire.headers.update(sign_request(secrets, call_id, wire.method, wire.url, wire.body))
        wire.signed_with = tuple(secrets)


def parse_destination(url: str) -> Url:
    """``url`` parsed as it is connected to; DestinationRefused if unsafe.

    Callers check URLs before queueing, so only a message put on the queue by
    hand, or a URL set by a dispatcher's ``prepare`` hook, is refused here.
    """
    try:
        return parse_target(url)
    except ValueError as exc:
        raise DestinationRefused(f"{redact_url(url)!r} refused: {redact_url(str(exc))}") from None


def encode_params(params: Params) -> str:
    """A query string or form body; a list repeats its key and None leaves the parameter out (requests' rules)."""
    pairs = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else (value,):
            if item is not None:
                pairs.append((name, item))
    return urlencode(pairs)

"""One HTTP call: the attempts, the retry policy, and the capped read.

Why the pieces look the way they do:

* **urllib3, not requests.**  One thread-safe ``PoolManager`` keeps
  connections alive for every worker thread.  requests sits on the same
  urllib3 but, per request, re-reads proxy and netrc settings and rebuilds
  its request: that cost half the actor's CPU (benchmarks/PROFILE.md).
  What it did for us is done here once: environment proxies (per origin),
  its CA bundle, credentials in the URL, and redirects (up to
  ``MAX_REDIRECTS``, each re-checked by the destination policy).
* **A timeout on every attempt**, and a deadline on the body read: urllib3's
  timeout bounds each socket operation, not the whole answer, so a
  server dripping one byte a second would otherwise hold a thread forever.
* **A streamed, capped read.**  A declared ``Content-Length`` over the cap
  fails the call without reading; an undeclared one is read until the cap
  is crossed, then dropped.
* **Retries for transport failures only**, by the strategies of
  :mod:`dispatch.retries`: refused, reset, timed out, or 429/502/503/504.
  Any answer the endpoint meant to give (a ``failure``, a 404, a malformed
  body) is final.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import urllib.request
from collections.abc import Callable, Sequence
from importlib.metadata import version
from urllib.parse import unquote, urlencode, urljoin

import certifi
import urllib3
from urllib3.util import Url, make_headers, parse_url

from .errors import BadStatusError, ResponseTooLargeError
from .policy import DestinationPolicy
from .protocol import Params
from .retries import RETRY_STATUSES, AttemptFailed, DeliveryFailed, RetryPolicy, parse_retry_after
from .signing import sign_request

logger = logging.getLogger(__name__)

USER_AGENT = f"dispatch/{version('dispatch')}"

_READ_CHUNK = 64 * 1024

#: Redirects followed within one attempt (each one re-checked by the destination policy).
MAX_REDIRECTS = 10

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}

#: Connections are kept alive per origin; more threads than ``maxsize`` still
#: work, their extra connections are closed after use instead of kept.
_POOL_OPTIONS = {"num_pools": 100, "maxsize": 32, "block": False, "retries": False, "cert_reqs": "CERT_REQUIRED"}


@dataclasses.dataclass(frozen=True)
class Request:
    """Everything one call needs to be attempted, however many times."""

    url: str
    method: str
    params: Params
    timeout: float
    max_response_bytes: int
    call_id: str | None = None  # the message id: Idempotency-Key and webhook-id


#: Called after every attempt with (request, seconds, outcome); outcome is
#: "ok" or the name of the error class the attempt ended with.
AttemptListener = Callable[[Request, float, str], None]


class Transport:
    """Performs calls over HTTP through one thread-safe ``urllib3.PoolManager``.

    ``listeners`` are told about every attempt (metrics use this); a
    listener must be quick and must not raise.
    """

    def __init__(self, policy: DestinationPolicy | None = None, signing_secrets: Sequence[str] = ()) -> None:
        self.policy = policy or DestinationPolicy()
        self.signing_secrets = tuple(signing_secrets)
        self.listeners: list[AttemptListener] = []
        self.pool_options = {**_POOL_OPTIONS, "ca_certs": _ca_bundle()}
        self.pools = urllib3.PoolManager(**self.pool_options)
        # A proxy from the environment would connect on our behalf, unchecked: with a policy, none is used.
        self.proxies: dict[str, str] = {} if self.policy.active else urllib.request.getproxies()
        self._managers: dict[tuple[str, str], urllib3.PoolManager] = {}

    def deliver(self, request: Request, policy: RetryPolicy) -> bytes:
        """The body of the endpoint's 2xx answer, after as many attempts as the policy allows.

        Raises TransportError when every attempt failed, and the errors of
        :meth:`attempt` for an answer that is final.
        """
        retrying = policy.retrying
        try:
            return retrying(self.attempt, request)
        except AttemptFailed as exc:
            attempts = retrying.statistics.get("attempt_number", policy.max_attempts)
            raise DeliveryFailed(
                f"{request.method} {request.url} failed after {attempts} attempt(s): {exc}", exc.retry_after
            ) from None

    def attempt(self, request: Request) -> bytes:
        """One request: the 2xx body, or AttemptFailed, BadStatusError, ResponseTooLargeError."""
        if not self.listeners:
            return self._attempt(request)
        started, outcome = time.perf_counter(), "ok"
        try:
            return self._attempt(request)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            for listener in self.listeners:
                listener(request, time.perf_counter() - started, outcome)

    def prepare(self, request: Request) -> WireRequest:
        """The request exactly as it goes on the wire, signed when secrets are configured.

        Signing happens here, on every attempt, because the signature covers a
        timestamp: one made for the first attempt would be stale for a
        delivery scheduled hours later.
        """
        target, body = parse_url(request.url), None
        headers = {**_HEADERS, "Idempotency-Key": request.call_id} if request.call_id else dict(_HEADERS)
        encoded = _encode_params(request.params)
        if request.method == "GET":
            if encoded:
                target = target._replace(query=f"{target.query}&{encoded}" if target.query else encoded)
        else:
            body = encoded.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if target.auth:
            user, _, password = target.auth.partition(":")
            headers["Authorization"] = make_headers(basic_auth=f"{unquote(user)}:{unquote(password)}")["authorization"]
        target = target._replace(auth=None, fragment=None)
        if self.signing_secrets and request.call_id:
            headers.update(sign_request(self.signing_secrets, request.call_id, request.method, target.url, body))
        return WireRequest(request.method, target, body, headers)

    def _attempt(self, request: Request) -> bytes:
        deadline = time.monotonic() + request.timeout
        wire = self.prepare(request)
        timeout = urllib3.Timeout(connect=request.timeout, read=request.timeout)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                response = self._open(wire, timeout)
                complete = False
                try:
                    status = response.status
                    location = response.get_redirect_location()
                    if location:
                        wire = wire.redirected(status, location)
                        continue
                    if status in RETRY_STATUSES:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        asked = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
                        raise AttemptFailed(f"HTTP {status} {response.reason}{asked}", retry_after)
                    if not 200 <= status < 300:
                        raise BadStatusError(f"HTTP {status} {response.reason} from {request.method} {request.url}")
                    body = _read_capped(response, request.max_response_bytes, deadline)
                    complete = True
                    return body
                finally:
                    if not complete:  # unread data would poison a kept-alive connection
                        response.close()
                    response.release_conn()
            raise BadStatusError(f"more than {MAX_REDIRECTS} redirects from {request.method} {request.url}")
        except urllib3.exceptions.NewConnectionError as exc:  # refused or unreachable (a TimeoutError subclass)
            raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        except urllib3.exceptions.TimeoutError as exc:
            raise AttemptFailed(f"timed out after {request.timeout:g}s ({type(exc).__name__})") from None
        except urllib3.exceptions.HTTPError as exc:
            raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:  # the destination policy's own DNS lookup
            raise AttemptFailed(f"cannot resolve {wire.url}: {exc}") from None

    def _open(self, wire: WireRequest, timeout: urllib3.Timeout) -> urllib3.BaseHTTPResponse:
        """Send ``wire`` and return the response with its body unread."""
        options = {"timeout": timeout, "redirect": False, "retries": False, "preload_content": False}
        target = wire.target
        if self.policy.active:
            pool, host = self.policy.pinned_pool(self.pools, target)
            headers = {**wire.headers, "Host": host}
            return pool.urlopen(
                wire.method, target.request_uri, body=wire.body, headers=headers, assert_same_host=False, **options
            )
        manager = self._manager(target.scheme, target.host)
        return manager.urlopen(wire.method, wire.url, body=wire.body, headers=wire.headers, **options)

    def _manager(self, scheme: str, host: str) -> urllib3.PoolManager:
        """The direct pool manager, or a proxy manager when the environment names a proxy for this origin.

        Decided once per scheme and host: looking the proxy variables up on
        every request is what made requests slow here (benchmarks/PROFILE.md).
        """
        manager = self._managers.get((scheme, host))
        if manager is None:
            proxy = self.proxies.get(scheme)
            if proxy and not urllib.request.proxy_bypass_environment(host, self.proxies):
                auth = parse_url(proxy).auth
                proxy_headers = make_headers(proxy_basic_auth=unquote(auth)) if auth else None
                manager = urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **self.pool_options)
            else:
                manager = self.pools
            manager = self._managers.setdefault((scheme, host), manager)
        return manager


@dataclasses.dataclass(frozen=True)
class WireRequest:
    """One request as sent: method, encoded URL (query included, parsed once), form body, headers."""

    method: str
    target: Url
    body: bytes | None
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return self.target.url

    def redirected(self, status: int, location: str) -> WireRequest:
        """The request a redirect asks for, as requests makes it.

        303, and 301/302 after a POST, become a GET without a body; credentials
        from the URL are not sent on to another host.
        """
        target = parse_url(urljoin(self.url, location))
        dropped = set()
        if (target.scheme, target.netloc) != (self.target.scheme, self.target.netloc):
            dropped.add("Authorization")
        method, body = self.method, self.body
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            method, body = "GET", None
            dropped.add("Content-Type")
        headers = {name: value for name, value in self.headers.items() if name not in dropped}
        return WireRequest(method, target, body, headers)


def _encode_params(params: Params) -> str:
    """A query string or form body; a list repeats its key and None leaves the parameter out (requests' rules)."""
    pairs = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else (value,):
            if item is not None:
                pairs.append((name, item))
    return urlencode(pairs)


def _ca_bundle() -> str:
    """The CA certificates requests would use: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(f"response of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    for chunk in response.stream(_READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise ResponseTooLargeError(f"response exceeds the {limit}-byte limit")
        if time.monotonic() > deadline:
            raise AttemptFailed("timed out reading the response body")
    return bytes(body)

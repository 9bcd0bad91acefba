"""One HTTP call: the attempts, the retry policy, and the capped read.

Why the pieces look the way they do:

* **urllib3, not requests.**  One thread-safe ``PoolManager`` keeps
  connections alive for every worker thread.  requests sits on the same
  urllib3 but, per request, re-reads proxy and netrc settings and rebuilds
  its request: that cost half the actor's CPU (benchmarks/PROFILE.md).
  What it did for us is done here once: environment proxies (per origin),
  its CA bundle, credentials in the URL, and redirects (up to
  ``MAX_REDIRECTS``, each re-checked by the destination policy).
* **A deadline on the whole attempt** (``Request.timeout``: connect,
  headers, body and redirects together).  urllib3's timeout bounds each
  socket operation, not the whole answer, so a server dripping one byte a
  second -- in its headers or its body -- would otherwise hold a thread for
  as long as it liked.  A watchdog thread shuts the attempt's socket down
  when its deadline passes (:class:`_Deadline`); the read then ends at once.
* **One parse of the URL** (:func:`dispatch.protocol.parse_target`, urllib3's
  parser): the destination policy checks the very parse the connection is
  made from, and a URL another parser would read differently is refused.
* **A streamed, capped read.**  A declared ``Content-Length`` over the cap
  fails the call without reading; an undeclared one is read until the cap
  is crossed, then dropped.
* **Credentials stay with their origin.**  A redirect to another scheme,
  host or port drops ``Authorization``, cookies and the ``webhook-*``
  signature headers.
* **Retries for transport failures only**, by the strategies of
  :mod:`dispatch.retries`: refused, reset, timed out, or 429/502/503/504.
  Any answer the endpoint meant to give (a ``failure``, a 404, a malformed
  body) is final.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json
import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from urllib.parse import unquote, urlencode, urljoin

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Url, make_headers, parse_url

from . import tracing
from .destinations import Destinations
from .errors import BadStatusError, DestinationRefused, DispatchError, ResponseTooLargeError
from .policy import DestinationPolicy
from .protocol import MAX_TIMEOUT, Params, parse_target, port_of
from .retries import RETRY_STATUSES, AttemptFailed, DeliveryFailed, RetryPolicy, parse_retry_after
from .signing import sign_request

logger = logging.getLogger(__name__)

USER_AGENT = f"dispatch/{version('dispatch')}"

_READ_CHUNK = 64 * 1024

#: Redirects followed within one attempt (each one re-checked by the destination policy).
MAX_REDIRECTS = 10

_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}

#: Connections are kept alive per origin, at least ``MIN_POOL_SIZE`` and one per worker thread
#: (``Transport(pool_size=...)``): with fewer, the threads beyond it open a connection per call
#: and close it after ("Connection pool is full"), which costs a TCP (and TLS) handshake each.
MIN_POOL_SIZE = 32
_POOL_OPTIONS = {"num_pools": 100, "block": False, "retries": False, "cert_reqs": "CERT_REQUIRED"}


@dataclasses.dataclass(frozen=True)
class Request:
    """Everything one call needs to be attempted, however many times."""

    url: str
    method: str
    params: Params
    timeout: float
    max_response_bytes: int
    call_id: str | None = None  # the message id: Idempotency-Key and webhook-id
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the call's own, checked by the caller
    body_format: str = "form"  # how params travel in a method with a body: "form" or "json"


@dataclasses.dataclass(frozen=True)
class Answer:
    """The endpoint's final answer to one call: what :meth:`HttpDispatch.parse` reads."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    body: bytes


#: A dispatcher's hook on the request about to be sent (:meth:`HttpDispatch.prepare`).
Shaper = Callable[["WireRequest"], "WireRequest"]

#: Called after every attempt with (request, seconds, outcome); outcome is
#: "ok" or the name of the error class the attempt ended with.
AttemptListener = Callable[[Request, float, str], None]


class Transport:
    """Performs calls over HTTP through one thread-safe ``urllib3.PoolManager``.

    ``listeners`` are told about every attempt (metrics use this); a
    listener must be quick and must not raise.
    """

    def __init__(
        self,
        policy: DestinationPolicy | None = None,
        signing_secrets: Sequence[str] = (),
        destinations: Destinations | None = None,
        pool_size: int = MIN_POOL_SIZE,
    ) -> None:
        self.policy = policy or DestinationPolicy()
        self.signing_secrets = tuple(signing_secrets)
        self.destinations = destinations or Destinations()
        self.listeners: list[AttemptListener] = []
        self.pool_options = {**_POOL_OPTIONS, "maxsize": max(MIN_POOL_SIZE, pool_size), "ca_certs": _ca_bundle()}
        self.pools = _watched(urllib3.PoolManager(**self.pool_options))
        # A proxy from the environment would connect on our behalf, unchecked: with a policy, none is used.
        self.proxies: dict[str, str] = {} if self.policy.active else urllib.request.getproxies()
        self._managers: dict[tuple[str, str], urllib3.PoolManager] = {}

    def size_pools(self, connections_per_host: int) -> None:
        """Keep at least ``connections_per_host`` connections per origin; at worker boot, before any call.

        A worker's thread count is known only once it boots (:class:`~dispatch.middleware.PoolSizing`);
        pools made from then on take the size.  It never shrinks.
        """
        size = max(self.pools.connection_pool_kw["maxsize"], connections_per_host)
        self.pool_options["maxsize"] = self.pools.connection_pool_kw["maxsize"] = size

    def deliver(self, request: Request, policy: RetryPolicy, shape: Shaper | None = None) -> Answer:
        """The endpoint's 2xx answer, after as many attempts as the policy allows.

        Raises DeliveryFailed when every attempt failed, and the errors of
        :meth:`attempt` for an answer that is final.
        """
        retrying = policy.retrying
        try:
            return retrying(self.attempt, request, shape)
        except AttemptFailed as exc:
            attempts = retrying.statistics.get("attempt_number", policy.max_attempts)
            raise DeliveryFailed(
                f"{request.method} {request.url} failed after {attempts} attempt(s): {exc}", exc.retry_after
            ) from None

    def attempt(self, request: Request, shape: Shaper | None = None) -> Answer:
        """One request: the 2xx answer, or AttemptFailed, BadStatusError, ResponseTooLargeError."""
        with tracing.attempt_span(request.method, request.url):
            if not self.listeners:
                return self._attempt(request, shape)
            started, outcome = time.perf_counter(), "ok"
            try:
                return self._attempt(request, shape)
            except Exception as exc:
                outcome = type(exc).__name__
                raise
            finally:
                for listener in self.listeners:
                    listener(request, time.perf_counter() - started, outcome)

    def prepare(self, request: Request, shape: Shaper | None = None) -> WireRequest:
        """The request exactly as it goes on the wire: encoded, shaped by ``shape``, then signed.

        Headers are layered: the worker's defaults, the call's own headers,
        the URL's credentials, then the destinations file's headers for the
        host (the operator's word wins); ``traceparent`` (:mod:`dispatch.tracing`)
        and ``Idempotency-Key`` last, as the worker owns them.  ``shape`` (a
        dispatcher's :meth:`prepare` hook) sees the result and may change it;
        the signature is made after it, so it covers what is really sent.
        Signing happens on every attempt because
        the signature covers a timestamp: one made for the first attempt
        would be stale for a delivery scheduled hours later.
        """
        target, body = _target(request.url), None
        headers = {**_HEADERS, **request.headers}
        if request.method == "GET":
            encoded = _encode_params(request.params)
            if encoded:
                target = target._replace(query=f"{target.query}&{encoded}" if target.query else encoded)
        elif request.body_format == "json":
            body = json.dumps(request.params, separators=(",", ":"), ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            body = _encode_params(request.params).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if target.auth:
            user, _, password = target.auth.partition(":")
            headers["Authorization"] = make_headers(basic_auth=f"{unquote(user)}:{unquote(password)}")["authorization"]
        target = target._replace(auth=None, fragment=None)
        destination = self.destinations.for_host(target.host, port_of(target))
        headers.update(destination.headers)
        tracing.inject(headers)  # traceparent: the endpoint's spans join the caller's trace
        if request.call_id:
            headers["Idempotency-Key"] = request.call_id
        wire = WireRequest(request.method, target, body, headers)
        if shape is not None:
            wire = shape(wire)
            if not isinstance(wire, WireRequest):
                raise DispatchError(f"prepare() must return the request it was given, not {type(wire).__name__}")
        if wire.target is not target:  # the hook sent it elsewhere: that host's secret signs it
            destination = self.destinations.for_host(wire.target.host, port_of(wire.target))
        secrets = destination.signing_secrets or self.signing_secrets
        if secrets and request.call_id:
            wire.headers.update(sign_request(secrets, request.call_id, wire.method, wire.url, wire.body))
        return wire

    def _attempt(self, request: Request, shape: Shaper | None) -> Answer:
        # Bounded here too, as a message put on the queue by hand is not checked (protocol.OPTIONS).
        seconds = min(request.timeout, MAX_TIMEOUT) if request.timeout > 0 else MAX_TIMEOUT
        deadline = _Deadline(time.monotonic() + seconds)
        wire = self.prepare(request, shape)
        timed_out = f"timed out after {seconds:g}s (connect, headers and body of one attempt)"
        previous, _current.deadline = getattr(_current, "deadline", None), deadline
        _WATCHDOG.add(deadline)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                remaining = deadline.at - time.monotonic()
                if remaining <= 0:
                    raise AttemptFailed(timed_out)
                response = self._open(wire, urllib3.Timeout(connect=remaining, read=remaining))
                tracing.record_status(response.status)
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
                    body = _read_capped(response, request.max_response_bytes, deadline.at)
                    if deadline.expired:  # a body without a length ends early, and looks whole, when cut
                        raise AttemptFailed(timed_out)
                    complete = True
                    return Answer(status, response.headers, body)
                finally:
                    if not complete:  # unread data would poison a kept-alive connection
                        response.close()
                    deadline.forget()  # the connection may go to another thread now: the watchdog lets go of it
                    response.release_conn()
            raise BadStatusError(f"more than {MAX_REDIRECTS} redirects from {request.method} {request.url}")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.expired:  # the watchdog cut the connection: whatever the read then saw, it timed out
                raise AttemptFailed(timed_out) from None
            if isinstance(exc, urllib3.exceptions.NewConnectionError):  # refused or unreachable
                raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
            if isinstance(exc, urllib3.exceptions.TimeoutError):
                raise AttemptFailed(f"{timed_out} ({type(exc).__name__})") from None
            if isinstance(exc, urllib3.exceptions.HTTPError):
                raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
            raise AttemptFailed(f"cannot resolve {wire.url}: {exc}") from None  # the policy's own DNS lookup
        finally:
            deadline.finish()
            _current.deadline = previous

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
                manager = _watched(urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **self.pool_options))
            else:
                manager = self.pools
            manager = self._managers.setdefault((scheme, host), manager)
        return manager


@dataclasses.dataclass
class WireRequest:
    """One request as sent: method, URL (query included, parsed once), body, headers.

    This is what a dispatcher's :meth:`~dispatch.HttpDispatch.prepare` hook
    receives and may change: ``headers`` (a dict), ``body`` (bytes or None),
    ``method``, or ``url`` (set it to a new string; the destination policy
    judges it when connecting, as it judges every URL).
    """

    method: str
    target: Url
    body: bytes | None
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return self.target.url

    @url.setter
    def url(self, value: str) -> None:
        self.target = _target(value)._replace(fragment=None)

    def redirected(self, status: int, location: str) -> WireRequest:
        """The request a redirect asks for, as requests makes it.

        303, and 301/302 after a POST, become a GET without a body.  A
        redirect that leaves the origin (scheme, host and port) drops every
        credential: ``Authorization`` (from the URL's credentials, too),
        cookies, API-key headers and the ``webhook-*`` signature, which
        proves to any host that sees it that we sent it.  A Location that
        is ambiguous (see :func:`dispatch.protocol.check_url`) is refused.
        """
        joined = urljoin(self.url, location)
        try:
            target = parse_target(joined)
        except ValueError as exc:
            raise DestinationRefused(f"redirect from {self.url} to {location!r} refused: {exc}") from None
        target = target._replace(auth=None, fragment=None)
        method, body = self.method, self.body
        dropped: set[str] = set()
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            method, body = "GET", None
            dropped.add("content-type")
        leaves_origin = _origin(target) != _origin(self.target)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in dropped and not (leaves_origin and _is_credential(name))
        }
        return WireRequest(method, target, body, headers)


#: Headers that carry a credential (besides any ``webhook-*`` and ``*signature*`` header).
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "x-access-token"}
)


def _origin(target: Url) -> tuple[str | None, str | None, int | None]:
    return target.scheme, (target.host or "").lower(), port_of(target)


def _is_credential(name: str) -> bool:
    name = name.lower()
    return name in _CREDENTIAL_HEADERS or name.startswith("webhook-") or "signature" in name


def _target(url: str) -> Url:
    """``url`` parsed as it is connected to; DestinationRefused if unsafe.

    Callers check URLs before queueing, so only a message put on the queue by
    hand, or a URL set by a dispatcher's ``prepare`` hook, is refused here.
    """
    try:
        return parse_target(url)
    except ValueError as exc:
        raise DestinationRefused(f"{url!r} refused: {exc}") from None


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
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(f"response of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    for chunk in response.stream(_READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise ResponseTooLargeError(f"response exceeds the {limit}-byte limit")
        if time.monotonic() > deadline:
            raise AttemptFailed("timed out reading the response body")
    return bytes(body)


# -- the attempt's deadline -------------------------------------------------------------------


class _Deadline:
    """One attempt's deadline: when it passes, the sockets the attempt is using are shut down.

    A socket shut down under a blocked read wakes it with end-of-file at
    once, however slowly the server was dripping its headers or body; the
    attempt then reports a timeout (``expired``).  The connections are
    registered by the connection classes below, from the attempt's own
    thread (``_current``), each time one connects or sends a request.  Their
    sockets are kept as well: http.client lets go of a connection's socket
    (``sock = None``) as soon as an answer says ``Connection: close``, while
    the body is still to be read from it.
    """

    __slots__ = ("at", "connections", "expired", "finished", "lock", "sockets")

    def __init__(self, at: float) -> None:
        self.at = at
        self.lock = threading.Lock()
        self.connections: list[HTTPConnection] = []
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.finished = False

    def watch(self, connection: HTTPConnection) -> None:
        with self.lock:
            if self.finished:
                return
            self.connections.append(connection)
            if connection.sock is not None:
                self.sockets.append(connection.sock)
            if self.expired:  # too late already: cut it at once
                _shut_down(connection.sock)

    def forget(self) -> None:
        """Let go of the connections (before they go back to the pool, maybe to another thread)."""
        with self.lock:
            self.connections.clear()
            self.sockets.clear()

    def finish(self) -> None:
        with self.lock:
            self.finished = True
            self.connections.clear()
            self.sockets.clear()

    def expire(self) -> None:
        with self.lock:
            if self.finished:
                return
            self.expired = True
            for sock in [*self.sockets, *(connection.sock for connection in self.connections)]:
                _shut_down(sock)


def _shut_down(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError, TypeError, AttributeError):
            # socket.socket's own shutdown, also for an SSLSocket: its override would drop the TLS state
            # under the reading thread's feet; the raw shutdown just makes that read end.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per process that expires deadlines when they pass (started on first use)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._compact_at = 4096
        self._sequence = itertools.count()

    def add(self, deadline: _Deadline) -> None:
        with self._condition:
            if self._pid != os.getpid():  # first use, or a forked child: the parent's thread is not here
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="dispatch-deadlines", daemon=True).start()
            if len(self._heap) >= self._compact_at:  # finished deadlines wait in the heap until their time
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
                self._compact_at = max(4096, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline.at, next(self._sequence), deadline))
            if self._heap[0][2] is deadline:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                deadline = heapq.heappop(self._heap)[2]
            deadline.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()  # the deadline of the attempt this thread is making


def _watch(connection: HTTPConnection) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _Watched:
    """Registers the connection (and its socket, once it has one) with the current attempt's deadline."""

    def connect(self) -> None:
        _watch(self)  # the TLS handshake too: the socket is set before it starts
        super().connect()
        _watch(self)

    def request(self, *args, **kwargs) -> None:
        _watch(self)
        super().request(*args, **kwargs)
        _watch(self)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _watched(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """``manager``, making its connections with the classes the attempt's deadline can cut."""
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}
    return manager

"""The receiving end: serve plain Python functions as endpoints that speak the callback protocol.

Any web framework can answer ``{"status": "success", "retval": ...}``, but
every hand-written endpoint repeats the same chores: collect the arguments
from the query or the form body, catch exceptions into ``failure`` answers,
encode JSON, and -- when calls are signed -- check the signature before
anything runs.  :class:`Receiver` does those once::

    from dispatch.receiver import Receiver

    def multiply(x, y):
        return int(x) * int(y)

    app = Receiver(multiply)                                   # a WSGI app
    app = Receiver({"/multiply": multiply, "/divide": divide}, secret="whsec_...")

Arguments arrive as strings (a repeated key as a list of strings), from the
query string for GET and from the form-encoded body for POST -- the URL's
own query is not read on POST, because only the body is signed there.

One core (:meth:`Receiver.handle`) and thin adapters: the object itself is a
WSGI app; :meth:`~Receiver.as_asgi` (FastAPI/Starlette ``mount``),
:meth:`~Receiver.flask_view` and :meth:`~Receiver.django_view` wrap it.
No framework is imported until its adapter is asked for.

**Replays.**  A signature stays valid for the whole timestamp tolerance (5
minutes either way), so a signed receiver also remembers every ``webhook-id``
it has accepted until that id's timestamp leaves the window, and answers
``409 Conflict`` to the same id again -- on any of its routes, since the path
is not signed.  By default the ids are kept in the process's memory
(:class:`MemoryReplayStore`, shared by every Receiver of the process, bounded
and expiring); several processes or hosts serving the same endpoints must
share a :class:`RedisReplayStore`::

    store = RedisReplayStore(redis.Redis.from_url("redis://..."))
    app = Receiver(multiply, secret="whsec_...", replay_store=store)

A store that cannot answer (Redis down, the memory store full) makes the
receiver answer ``503`` with ``Retry-After``: it fails closed, and the
dispatch worker retries a 503.  A sender that retries after losing an answer
sends the same id again and gets the 409: the function ran once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs

from .errors import DispatchError
from .signing import DEFAULT_TOLERANCE, SignatureError, check_secret, signed_payload, verify

logger = logging.getLogger("dispatch.receiver")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
METHODS = ("GET", "POST")


class ReplayStoreError(DispatchError):
    """The replay store cannot say whether an id is new (Redis unreachable, memory store full)."""


class ReplayStore(Protocol):
    """Remembers accepted ``webhook-id`` values for a while."""

    def add(self, msg_id: str, ttl: float) -> bool:
        """Remember ``msg_id`` for ``ttl`` seconds; False if it is already remembered.

        Atomic: of two concurrent adds of one id, exactly one returns True.
        Raises ReplayStoreError when it cannot tell.
        """
        ...


class MemoryReplayStore:
    """Accepted ids in this process's memory, each until it expires; at most ``max_entries`` at once.

    Thread-safe.  When full of unexpired ids it refuses new ones (ReplayStoreError, a 503) rather
    than forget one that could still be replayed.  Only correctly signed requests are recorded, so
    only a sender holding the secret can fill it: size it for your peak rate times
    ``2 * tolerance`` seconds, or use :class:`RedisReplayStore`.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, msg_id = heapq.heappop(self._heap)
            if self._expiry.get(msg_id) == expiry:
                del self._expiry[msg_id]

    def add(self, msg_id: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            self._purge(now)
            if msg_id in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                raise ReplayStoreError(f"the replay store is full ({self.max_entries} ids within the window)")
            expiry = now + ttl
            self._expiry[msg_id] = expiry
            heapq.heappush(self._heap, (expiry, msg_id))
            return True


class RedisReplayStore:
    """Accepted ids in Redis (``SET key 1 NX PX ttl``), shared by every process that uses the same keys.

    ``client`` is a ``redis.Redis``; ``prefix`` namespaces the keys, so several groups of receivers
    that must not see each other's ids can share one database.
    """

    def __init__(self, client: Any, prefix: str = "dispatch:receiver:seen:") -> None:
        self.client = client
        self.prefix = prefix

    def add(self, msg_id: str, ttl: float) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(self.client.set(self.prefix + msg_id, b"1", nx=True, px=max(1, int(ttl * 1000))))
        except RedisError as exc:
            raise ReplayStoreError(f"the replay store is unreachable: {exc}") from None


#: The store of every Receiver built without ``replay_store``: one per process, so Receivers
#: serving different functions of one app (Flask, Django) refuse each other's replays too.
DEFAULT_REPLAY_STORE = MemoryReplayStore()


@dataclasses.dataclass(frozen=True)
class Incoming:
    """One request, as every adapter hands it to :meth:`Receiver.handle`.

    ``query`` is the raw query string (no ``?``) and ``body`` the raw body:
    signatures are checked on the exact bytes, never on re-encoded ones.
    ``headers`` is any mapping; names are matched case-insensitively.
    """

    method: str
    path: str
    query: bytes
    body: bytes
    headers: Mapping
    content_type: str = ""


@dataclasses.dataclass(frozen=True)
class Answer:
    """The HTTP status, JSON body and any extra headers of a response."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def all_headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", JSON), ("Content-Length", str(len(self.body))), *self.headers]


def _answer(status: int, payload: dict, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False, allow_nan=False).encode(), headers)


def _failure(status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return _answer(status, {"status": "failure", "reason": reason}, headers)


def _success(retval: Any) -> Answer:
    try:
        return _answer(200, {"status": "success", "retval": retval})
    except (TypeError, ValueError) as exc:
        return _failure(200, f"the return value cannot be sent as JSON: {exc}")


class Receiver:
    """Serve one function, or several by path, as a callback-protocol endpoint.

    ``target`` is a function (served at any path) or a mapping of paths to
    functions.  With ``secret`` (one ``whsec_...`` string, or several while
    rotating) every request must carry a valid Standard Webhooks signature
    or is answered 401 before any function runs, and a ``webhook-id`` already
    accepted is answered 409 (a replay; see the module docs).  ``replay_store``
    defaults to the process's :data:`DEFAULT_REPLAY_STORE`; pass a
    :class:`RedisReplayStore` when several processes serve the same endpoints.
    """

    def __init__(
        self,
        target: Callable[..., Any] | Mapping[str, Callable[..., Any]],
        *,
        secret: str | Sequence[str] | None = None,
        tolerance: int = DEFAULT_TOLERANCE,
        max_body_bytes: int = 1024 * 1024,
        replay_store: ReplayStore | None = None,
    ) -> None:
        if callable(target):
            self.func: Callable[..., Any] | None = target
            self.routes: dict[str, Callable[..., Any]] = {}
        else:
            self.func = None
            self.routes = {_route_key(path): func for path, func in target.items()}
        secrets = [secret] if isinstance(secret, str) else list(secret or [])
        # A bad secret should stop start-up, not turn every call into a 401.
        self.secrets = [check_secret(s) for s in secrets]
        self.tolerance = tolerance
        self.max_body_bytes = max_body_bytes
        self.replay_store: ReplayStore = DEFAULT_REPLAY_STORE if replay_store is None else replay_store

    def __repr__(self) -> str:
        served = self.func.__name__ if self.func else ", ".join(self.routes)
        return f"<Receiver {served}{' signed' if self.secrets else ''}>"

    @property
    def name(self) -> str:
        """The served function's name (or ``dispatch_receiver``): Flask's endpoint name."""
        return getattr(self.func, "__name__", "dispatch_receiver")

    # -- the core ------------------------------------------------------------------------------

    def admit(self, incoming: Incoming) -> tuple[Callable[..., Any], dict[str, Any]] | Answer:
        """The function to call and its arguments, or the Answer refusing the request."""
        method = incoming.method.upper()
        if method not in METHODS:
            return _failure(405, f"method {method} is not allowed; use GET or POST", (("Allow", "GET, POST"),))
        if len(incoming.body) > self.max_body_bytes:
            return _failure(413, f"the body is larger than {self.max_body_bytes} bytes")
        if self.secrets:
            now = int(time.time())
            payload = signed_payload(method, query=incoming.query, body=incoming.body)
            try:
                verified = verify(payload, incoming.headers, self.secrets, tolerance=self.tolerance, now=now)
            except SignatureError as exc:
                return _failure(401, f"signature check failed: {exc}")
            # Remember the id until its timestamp leaves the window; verify() refuses it after that.
            ttl = verified.timestamp + self.tolerance - now + 1
            try:
                fresh = self.replay_store.add(verified.msg_id, ttl)
            except ReplayStoreError as exc:
                logger.error("refusing a signed request: %s", exc)
                return _failure(503, f"cannot check for replays right now: {exc}", (("Retry-After", "5"),))
            if not fresh:
                return _failure(409, f"webhook-id {verified.msg_id[:80]!r} was already accepted: a replay")

        func = self.func or self.routes.get(_route_key(incoming.path))
        if func is None:
            return _failure(404, f"no function at {incoming.path}; known: {', '.join(self.routes)}")

        if method == "GET":
            encoded = incoming.query
        elif incoming.content_type.split(";")[0].strip().lower() in ("", FORM):
            encoded = incoming.body
        else:
            return _failure(415, f"the body must be {FORM}, not {incoming.content_type}")
        args = _parse_args(encoded)

        try:
            inspect.signature(func).bind(**args)
        except TypeError as exc:
            return _failure(200, f"bad arguments for {getattr(func, '__name__', 'the function')}(): {exc}")
        except ValueError:
            pass  # no introspectable signature (some builtins): let the call itself decide
        return func, args

    def handle(self, incoming: Incoming) -> Answer:
        """Answer one request (the WSGI, Flask and Django adapters call this)."""
        admitted = self.admit(incoming)
        if isinstance(admitted, Answer):
            return admitted
        func, args = admitted
        try:
            retval = func(**args)
            if inspect.iscoroutine(retval):  # an async function served over WSGI
                retval = asyncio.run(retval)
        except Exception as exc:
            return _failed(func, exc)
        return _success(retval)

    async def handle_async(self, incoming: Incoming) -> Answer:
        """Answer one request without blocking the event loop (the ASGI adapter calls this).

        An ``async def`` function is awaited; a plain one runs in a thread.  So does the admission
        of a signed request when the replay store is not in memory (a Redis round trip).
        """
        if self.secrets and not isinstance(self.replay_store, MemoryReplayStore):
            admitted = await asyncio.to_thread(self.admit, incoming)
        else:
            admitted = self.admit(incoming)
        if isinstance(admitted, Answer):
            return admitted
        func, args = admitted
        try:
            if inspect.iscoroutinefunction(func):
                retval = await func(**args)
            else:
                retval = await asyncio.to_thread(func, **args)
        except Exception as exc:
            return _failed(func, exc)
        return _success(retval)

    # -- adapters --------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        """The WSGI app: ``wsgiref``, gunicorn, uWSGI, or mounted with werkzeug's DispatcherMiddleware."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            answer = _failure(400, "bad Content-Length header")
        elif length > self.max_body_bytes:
            answer = _failure(413, f"the body is larger than {self.max_body_bytes} bytes")
        else:
            incoming = Incoming(
                method=environ["REQUEST_METHOD"],
                # WSGI hands over text as latin-1-decoded bytes; recover them exactly.
                path=environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace") or "/",
                query=environ.get("QUERY_STRING", "").encode("latin-1"),
                body=environ["wsgi.input"].read(length) if length else b"",
                headers=environ,  # HTTP_WEBHOOK_ID and the like: signing.verify reads this spelling
                content_type=environ.get("CONTENT_TYPE", ""),
            )
            answer = self.handle(incoming)
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", answer.all_headers)
        return [answer.body]

    def as_wsgi(self) -> Receiver:
        """The WSGI app (the receiver itself; for symmetry with :meth:`as_asgi`)."""
        return self

    def as_asgi(self) -> Callable:
        """An ASGI app: ``uvicorn module:app``, or ``fastapi_app.mount("/tasks", receiver.as_asgi())``."""

        async def app(scope: dict, receive: Callable, send: Callable) -> None:
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
                return
            if scope["type"] != "http":
                return
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                # Read one byte past the limit: enough for admit() to refuse it.
                if not message.get("more_body") or len(body) > self.max_body_bytes:
                    break
            headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
            # Mounted apps see the full path; the mount point is in root_path.
            path, root = scope["path"], scope.get("root_path", "")
            incoming = Incoming(
                method=scope["method"],
                path=(path[len(root) :] if root and path.startswith(root) else path) or "/",
                query=scope.get("query_string", b""),
                body=bytes(body),
                headers=headers,
                content_type=headers.get("content-type", ""),
            )
            answer = await self.handle_async(incoming)
            raw_headers = [(name.lower().encode(), value.encode()) for name, value in answer.all_headers]
            await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": answer.body})

        return app

    def flask_view(self) -> Callable:
        """A Flask view: ``app.add_url_rule("/multiply", view_func=Receiver(multiply).flask_view())``.

        It accepts GET and POST; its endpoint name is the function's name.
        """
        from flask import Response, request

        def view(**_url_values: Any) -> Response:
            incoming = Incoming(
                method=request.method,
                path=request.path,
                query=request.query_string,
                body=request.get_data(),
                headers=request.headers,
                content_type=request.content_type or "",
            )
            answer = self.handle(incoming)
            return Response(answer.body, status=answer.status, headers=answer.headers, content_type=JSON)

        view.__name__ = self.name
        view.methods = list(METHODS)  # type: ignore[attr-defined]  # read by Flask's add_url_rule
        return view

    def django_view(self) -> Callable:
        """A Django view: ``path("multiply", Receiver(multiply).django_view())`` in urls.py.

        CSRF protection is off for it: callers are servers, not browsers (sign calls instead).
        """
        from django.http import HttpResponse
        from django.views.decorators.csrf import csrf_exempt

        def view(request: Any, *_args: Any, **_kwargs: Any) -> HttpResponse:
            incoming = Incoming(
                method=request.method,
                path=request.path_info,
                query=_latin1(request.META.get("QUERY_STRING", "")),
                body=request.body,
                headers=request.headers,
                content_type=request.META.get("CONTENT_TYPE", ""),
            )
            answer = self.handle(incoming)
            response = HttpResponse(answer.body, status=answer.status, content_type=JSON)
            for name, value in answer.headers:
                response[name] = value
            return response

        view.__name__ = self.name
        return csrf_exempt(view)


def receiver(
    func: Callable[..., Any] | None = None,
    /,
    *,
    secret: str | Sequence[str] | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
    max_body_bytes: int = 1024 * 1024,
    replay_store: ReplayStore | None = None,
) -> Any:
    """Decorator form of :class:`Receiver`: ``@receiver`` or ``@receiver(secret=...)``.

    The decorated name becomes the Receiver (a WSGI app); the plain function
    stays reachable as ``.func``.
    """

    def wrap(f: Callable[..., Any]) -> Receiver:
        return Receiver(f, secret=secret, tolerance=tolerance, max_body_bytes=max_body_bytes, replay_store=replay_store)

    return wrap if func is None else wrap(func)


def _route_key(path: str) -> str:
    """``/multiply``, ``multiply`` and ``/multiply/`` name the same route."""
    return "/" + path.strip("/")


def _parse_args(encoded: bytes) -> dict[str, Any]:
    """Form-encoded arguments: one value -> a string, a repeated key -> a list of strings."""
    parsed = parse_qs(encoded.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")
    return {name: values[0] if len(values) == 1 else values for name, values in parsed.items()}


def _failed(func: Callable[..., Any], exc: Exception) -> Answer:
    name = getattr(func, "__name__", "the function")
    logger.warning("%s() failed: %s: %s", name, type(exc).__name__, exc, exc_info=True)
    return _failure(200, str(exc) or type(exc).__name__)


def _latin1(text: str) -> bytes:
    """A WSGI-style string back to its bytes (Django under ASGI decodes as UTF-8 instead)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


async def _lifespan(receive: Callable, send: Callable) -> None:
    """Acknowledge startup and shutdown: a receiver has nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

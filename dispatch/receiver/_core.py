"""The core of a receiver: admit a request (method, size, signature, replay, route, arguments), call, reply.

:class:`Receiver` knows no framework: every adapter turns its framework's request
into an :class:`~dispatch.receiver.Incoming` and the :class:`~dispatch.receiver.Reply`
back into its response.  The Flask and Django adapters' modules import their
framework, so they are imported only when their method is called.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..redaction import get_logger
from ..signing import DEFAULT_TOLERANCE, SignatureError, check_secret, signed_payload, verify
from ._arguments import check_arguments, read_arguments
from ._asgi import ASGIApp, asgi_app
from ._exchange import METHODS, Incoming, Reply
from ._replay import DEFAULT_REPLAY_STORE, MemoryReplayStore, ReplayStore, ReplayStoreError
from ._wsgi import serve_wsgi

logger = get_logger("dispatch.receiver")


class Receiver:
    """Serve one function, or several by path, as a callback-protocol endpoint.

    ``target`` is a function (served at any path) or a mapping of paths to
    functions.  With ``secret`` (one ``whsec_...`` string, or several while
    rotating) every request must carry a valid Standard Webhooks signature
    or is answered 401 before any function runs, and a ``webhook-id`` already
    accepted is answered 409 (a replay; see the package docs).  ``replay_store``
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

    def admit(self, incoming: Incoming) -> tuple[Callable[..., Any], dict[str, Any]] | Reply:
        """The function to call and its arguments, or the Reply refusing the request."""
        method = incoming.method.upper()
        if method not in METHODS:
            allowed = ", ".join(METHODS)
            return Reply.failure(405, f"method {method} is not allowed; use one of {allowed}", (("Allow", allowed),))
        if len(incoming.body) > self.max_body_bytes:
            return Reply.failure(413, f"the body is larger than {self.max_body_bytes} bytes")
        if self.secrets:
            now = int(time.time())
            payload = signed_payload(method, query=incoming.query, body=incoming.body)
            try:
                verified = verify(payload, incoming.headers, self.secrets, tolerance=self.tolerance, now=now)
            except SignatureError as exc:
                return Reply.failure(401, f"signature check failed: {exc}")
            # Remember the id until its timestamp leaves the window; verify() refuses it after that.
            ttl = verified.timestamp + self.tolerance - now + 1
            try:
                fresh = self.replay_store.add(verified.msg_id, ttl)
            except ReplayStoreError as exc:
                logger.error("refusing a signed request: %s", exc)
                return Reply.failure(503, f"cannot check for replays right now: {exc}", (("Retry-After", "5"),))
            if not fresh:
                return Reply.failure(409, f"webhook-id {verified.msg_id[:80]!r} was already accepted: a replay")

        func = self.func or self.routes.get(_route_key(incoming.path))
        if func is None:
            return Reply.failure(404, f"no function at {incoming.path}; known: {', '.join(self.routes)}")

        args = read_arguments(incoming)
        if isinstance(args, Reply):
            return args
        return check_arguments(func, args) or (func, args)

    def handle(self, incoming: Incoming) -> Reply:
        """Answer one request (the WSGI, Flask and Django adapters call this)."""
        admitted = self.admit(incoming)
        if isinstance(admitted, Reply):
            return admitted
        func, args = admitted
        try:
            retval = func(**args)
            if inspect.iscoroutine(retval):  # an async function served over WSGI
                retval = asyncio.run(retval)
        except Exception as exc:
            return _failed(func, exc)
        return Reply.success(retval)

    async def handle_async(self, incoming: Incoming) -> Reply:
        """Answer one request without blocking the event loop (the ASGI adapter calls this).

        An ``async def`` function is awaited; a plain one runs in a thread.  So does the admission
        of a signed request when the replay store is not in memory (a Redis round trip).
        """
        if self.secrets and not isinstance(self.replay_store, MemoryReplayStore):
            admitted = await asyncio.to_thread(self.admit, incoming)
        else:
            admitted = self.admit(incoming)
        if isinstance(admitted, Reply):
            return admitted
        func, args = admitted
        try:
            if inspect.iscoroutinefunction(func):
                retval = await func(**args)
            else:
                retval = await asyncio.to_thread(func, **args)
        except Exception as exc:
            return _failed(func, exc)
        return Reply.success(retval)

    # -- adapters --------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """The WSGI app: ``wsgiref``, gunicorn, uWSGI, or mounted with werkzeug's DispatcherMiddleware."""
        return serve_wsgi(self, environ, start_response)

    def as_wsgi(self) -> Receiver:
        """The WSGI app (the receiver itself; for symmetry with :meth:`as_asgi`)."""
        return self

    def as_asgi(self) -> ASGIApp:
        """An ASGI app: ``uvicorn module:app``, or ``fastapi_app.mount("/tasks", receiver.as_asgi())``."""
        return asgi_app(self)

    def flask_view(self) -> Callable[..., Any]:
        """A Flask view: ``app.add_url_rule("/multiply", view_func=Receiver(multiply).flask_view())``.

        It accepts every method in :data:`METHODS`; its endpoint name is the function's name.
        """
        from ._flask import flask_view

        return flask_view(self)

    def django_view(self) -> Callable[..., Any]:
        """A Django view: ``path("multiply", Receiver(multiply).django_view())`` in urls.py.

        CSRF protection is off for it: callers are servers, not browsers (sign calls instead).
        """
        from ._django import django_view

        return django_view(self)


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


def _failed(func: Callable[..., Any], exc: Exception) -> Reply:
    name = getattr(func, "__name__", "the function")
    logger.warning("%s() failed: %s: %s", name, type(exc).__name__, exc, exc_info=True)
    return Reply.failure(200, str(exc) or type(exc).__name__)

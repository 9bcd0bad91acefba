"""The console's door: every response's security headers, and who may come in -- checked before anything else.

:class:`Guard` wraps the console's app as ASGI middleware.  It reads only the request's
headers: a request without a valid session cookie or ``Authorization: Bearer`` token is
answered the sign-in form (401) -- or, for a wrong bearer token, a plain 401 -- before the
app runs, so nothing of the console, not even the parsing of a body, is reached without
one.  The sign-in form (``GET``/``POST /sign-in``) and the style sheet are the only ways in.

Every answer, the refusals included, says: a Content-Security-Policy that allows only the
console's own style sheet and forms to itself (no script at all, no framing), ``no-store``
caching, ``X-Frame-Options: DENY``, ``nosniff`` and no referrer.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .session import Session, Sessions

#: The cookie that holds a signed-in session.
SESSION_COOKIE = "dispatch_console"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}

_PUBLIC = {("GET", "/sign-in"), ("HEAD", "/sign-in"), ("POST", "/sign-in")}


def route_path(scope: Scope) -> str:
    """The path inside the console (``/calls/1``), whatever prefix it is mounted under."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_public(method: str, path: str) -> bool:
    """The sign-in form and the style sheet: what anyone may see."""
    return (method, path) in _PUBLIC or (method in ("GET", "HEAD") and path.startswith("/static/"))


class Guard:
    """ASGI middleware: security headers on every answer; no way past without a session or a bearer token.

    ``sign_in(request)`` is the answer to a request without credentials.  The session of an
    admitted request is in ``request.state.session``.
    """

    def __init__(self, app: ASGIApp, sessions: Sessions, sign_in: Callable[[Request], Response]) -> None:
        self.app = app
        self.sessions = sessions
        self.sign_in = sign_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        if not is_public(scope["method"], route_path(scope)):
            request = Request(scope)
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            session: Session | None
            if scheme.lower() == "bearer":
                session = self.sessions.bearer(token.strip())
                if session is None:
                    await self._refuse_bearer(scope, receive, secured)
                    return
            else:
                session = self.sessions.verify(request.cookies.get(SESSION_COOKIE, ""))
                if session is None:
                    await self.sign_in(request)(scope, receive, secured)
                    return
            scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, secured)

    @staticmethod
    async def _refuse_bearer(scope: Scope, receive: Receive, send: Send) -> None:
        challenge = 'Bearer realm="dispatch", error="invalid_token"'
        body = json.dumps({"detail": "invalid bearer token"}).encode()
        response = Response(body, 401, {"WWW-Authenticate": challenge}, media_type="application/json")
        await response(scope, receive, send)

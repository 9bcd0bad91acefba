"""The request body limit (``DISPATCH_GATEWAY_MAX_BODY``, 1 MiB by default), as ASGI middleware.

It is enforced *while the body is read* -- before it is parsed and before the
token is checked, since FastAPI reads a body before running any dependency: a
too-large Content-Length is answered 413 without reading a byte, a chunked body
once the limit is crossed.
"""

from __future__ import annotations

import contextlib
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once a body crosses the limit (the 413 is already sent)."""


class BodyLimit:
    """ASGI middleware: refuse a request body larger than ``max_body`` bytes with 413, while it is read.

    A Content-Length over the limit is answered at once, before any of the body is read.  A body
    without one (chunked) is counted as the app receives it; the chunk that crosses the limit is
    never handed over: the 413 is sent instead and the app's ``receive`` raises, so nothing
    downstream -- parsing, authentication -- sees more than ``max_body`` bytes.  The 413 says
    ``Connection: close``, so the server stops reading the rest.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name.lower() == b"content-length":
                if not value.strip().isdigit():  # servers refuse these first; never trust that
                    await self._refuse(send, 400, "bad Content-Length header")
                    return
                if int(value) > self.max_body:
                    await self._refuse(send, 413, self._too_large())
                    return

        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    if not started:
                        refused = True
                        await self._refuse(send, 413, self._too_large())
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # whatever the app answers to the exception, the 413 has been sent
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):  # reaches here only if the app let it through
            await self.app(scope, limited_receive, guarded_send)

    def _too_large(self) -> str:
        return f"the body is larger than {self.max_body} bytes ({Settings.env('gateway_max_body')})"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

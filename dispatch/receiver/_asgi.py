"""The ASGI adapter: uvicorn, hypercorn, or mounted in FastAPI/Starlette.

Plain functions run in a thread (:meth:`Receiver.handle_async`), so the event loop never blocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._exchange import Handler, Incoming

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def asgi_app(handler: Handler) -> ASGIApp:
    """An ASGI app answering every HTTP request with ``handler``."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
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
            if not message.get("more_body") or len(body) > handler.max_body_bytes:
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
        reply = await handler.handle_async(incoming)
        raw_headers = [(name.lower().encode(), value.encode()) for name, value in reply.all_headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": reply.body})

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown: a receiver has nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

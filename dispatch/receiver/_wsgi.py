"""The WSGI adapter: a :class:`~dispatch.receiver.Receiver` is itself a WSGI app (wsgiref, gunicorn, uWSGI)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from ._exchange import Handler, Incoming, Reply


def serve_wsgi(handler: Handler, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answer one WSGI request with ``handler``."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0:
        reply = Reply.failure(400, "bad Content-Length header")
    elif length > handler.max_body_bytes:
        reply = Reply.failure(413, f"the body is larger than {handler.max_body_bytes} bytes")
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
        reply = handler.handle(incoming)
    start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", reply.all_headers)
    return [reply.body]

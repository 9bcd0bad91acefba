"""The Django adapter: a CSRF-exempt view for urls.py.  Importing this module imports Django."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ._exchange import JSON, Handler, Incoming


def django_view(handler: Handler) -> Callable[..., HttpResponse]:
    """A Django view answering with ``handler``; CSRF protection is off, as callers are servers, not browsers."""

    def view(request: Any, *_args: Any, **_kwargs: Any) -> HttpResponse:
        incoming = Incoming(
            method=request.method,
            path=request.path_info,
            query=_latin1(request.META.get("QUERY_STRING", "")),
            body=request.body,
            headers=request.headers,
            content_type=request.META.get("CONTENT_TYPE", ""),
        )
        reply = handler.handle(incoming)
        response = HttpResponse(reply.body, status=reply.status, content_type=JSON)
        for name, value in reply.headers:
            response[name] = value
        return response

    view.__name__ = handler.name
    return csrf_exempt(view)


def _latin1(text: str) -> bytes:
    """A WSGI-style string back to its bytes (Django under ASGI decodes as UTF-8 instead)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()

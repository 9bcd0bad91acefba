"""The Flask adapter: a view function for ``app.add_url_rule``.  Importing this module imports Flask."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from flask import Response, request

from ._exchange import JSON, METHODS, Handler, Incoming


def flask_view(handler: Handler) -> Callable[..., Response]:
    """A Flask view answering with ``handler``; its endpoint name is the handler's name."""

    def view(**_url_values: Any) -> Response:
        incoming = Incoming(
            method=request.method,
            path=request.path,
            query=request.query_string,
            body=request.get_data(),
            # werkzeug's Headers has the items() that signing.verify reads, but is not typed as a Mapping
            headers=cast(Mapping[str, str], request.headers),
            content_type=request.content_type or "",
        )
        reply = handler.handle(incoming)
        return Response(reply.body, status=reply.status, headers=reply.headers, content_type=JSON)

    view.__name__ = handler.name
    view.methods = list(METHODS)  # type: ignore[attr-defined]  # read by Flask's add_url_rule
    return view

"""One set of functions served by dispatch.receiver through one adapter, as its own process.

    python tests/integration/receiver_app.py {wsgi|fastapi|flask|django} PORT

Signature checks are on when ``DISPATCH_SIGNING_SECRET`` is set.  Under
FastAPI the functions are mounted at ``/tasks``.
"""

from __future__ import annotations

import os
import sys
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dispatch.receiver import Receiver


def multiply(x, y):
    return int(x) * int(y)


def echo(**arguments):
    return arguments


FUNCTIONS = {"/multiply": multiply, "/echo": echo}
SECRET = os.environ.get("DISPATCH_SIGNING_SECRET") or None


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve_wsgi(app: Any, port: int) -> None:
    make_server("127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler).serve_forever()


def wsgi(port: int) -> None:
    serve_wsgi(Receiver(FUNCTIONS, secret=SECRET), port)


def fastapi(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    app.mount("/tasks", Receiver(FUNCTIONS, secret=SECRET).as_asgi())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def flask(port: int) -> None:
    from flask import Flask

    app = Flask(__name__)
    for path, func in FUNCTIONS.items():
        app.add_url_rule(path, view_func=Receiver(func, secret=SECRET).flask_view())
    serve_wsgi(app, port)


def django(port: int) -> None:
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.urls import path

    settings.configure(
        DEBUG=False,
        SECRET_KEY="not-a-secret",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        # Django's usual middleware, CSRF included: the views must be exempt from it.
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
        APPEND_SLASH=False,
    )
    global urlpatterns
    urlpatterns = [
        path(route.strip("/"), Receiver(func, secret=SECRET).django_view()) for route, func in FUNCTIONS.items()
    ]
    serve_wsgi(get_wsgi_application(), port)


urlpatterns: list[Any] = []  # Django's URLconf (ROOT_URLCONF is this module), filled in by django()

if __name__ == "__main__":
    {"wsgi": wsgi, "fastapi": fastapi, "flask": flask, "django": django}[sys.argv[1]](int(sys.argv[2]))

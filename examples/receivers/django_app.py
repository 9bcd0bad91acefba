"""A one-file Django project whose views are plain functions, served by dispatch.receiver.

    python examples/receivers/django_app.py [PORT]         (default 8000)

In a real project, only the urls.py part is needed:

    path("multiply", Receiver(multiply).django_view()),

With DISPATCH_SIGNING_SECRET=whsec_... in the environment, every call must be
signed with that secret; unsigned ones get HTTP 401.

The hand-written views of django_view.py are served too, at /view/multiply,
/view/divide and /view/echo (they do not check signatures).
"""

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings

settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["127.0.0.1", "localhost"], DEBUG=False)

import django_view  # noqa: E402 -- the hand-written views beside this file; this and the imports below need the settings above
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from dispatch.receiver import Receiver  # noqa: E402


def multiply(x, y):
    return int(x) * int(y)


def divide(x, y):
    return int(x) / int(y)


def echo(**args):
    return args


secret = os.environ.get("DISPATCH_SIGNING_SECRET") or None
urlpatterns = [path(func.__name__, Receiver(func, secret=secret).django_view()) for func in (multiply, divide, echo)]
urlpatterns += [path(f"view/{name}", getattr(django_view, name)) for name in ("multiply", "divide", "echo")]
urlpatterns.append(path("health", lambda request: JsonResponse({"status": "success", "retval": "ok"})))


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    make_server("127.0.0.1", port, get_wsgi_application(), handler_class=QuietHandler).serve_forever()

"""Celery 3's ``celery.task.http`` ported to Celery 5: the baseline the benchmark measures against.

Celery 3.1 shipped ``celery.task.http`` (``HttpDispatch``, the ``celery.http_dispatch``
task, ``MutableURL`` and ``URL`` with ``get_async``/``post_async``); Celery 4 removed it.
This is that module, kept line for line where it can be, with two changes so that the
comparison is against the *best* version of it rather than a strawman:

* ``urllib2.urlopen`` (a new TCP connection per call) is replaced by a ``requests.Session``
  shared by every call a worker thread makes (one per thread, which in the prefork pool is
  one per process), so connections are kept alive exactly as this package does;
* a non-2xx answer raises, as ``urlopen`` did (``HTTPError``), via ``raise_for_status()``.

The protocol is unchanged: ``{"status": "success", "retval": ...}`` is the result,
``{"status": "failure", "reason": ...}`` raises ``RemoteExecuteError``, any other status
``UnknownStatusError``, an empty or non-JSON body ``InvalidResponseError``.

Configuration (environment, read at import; the benchmark sets them, ``config.CELERY_ENV``):

``CELERY_PORT_BROKER``   RabbitMQ URL (default ``amqp://guest:guest@127.0.0.1:5672/dispatch-bench``)
``CELERY_PORT_BACKEND``  Redis result backend (default ``redis://127.0.0.1:6379/7``)
``CELERY_PORT_QUEUE``    queue name (default ``celery-bench``)
``CELERY_PORT_CONFIRM``  ``1`` turns on publisher confirms (Celery's default is off)

Start a worker with::

    cd benchmarks && celery -A celery_port worker -P prefork -c 2 -Q celery-bench \\
        --without-gossip --without-mingle --without-heartbeat
"""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import parse_qsl, urlencode, urlparse

import requests
from celery import Celery
from celery import __version__ as celery_version

BROKER = os.environ.get("CELERY_PORT_BROKER", "amqp://guest:guest@127.0.0.1:5672/dispatch-bench")
BACKEND = os.environ.get("CELERY_PORT_BACKEND", "redis://127.0.0.1:6379/7")
QUEUE = os.environ.get("CELERY_PORT_QUEUE", "celery-bench")
CONFIRM = os.environ.get("CELERY_PORT_CONFIRM", "0") == "1"

app = Celery("celery_port", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    # The best configuration for throughput: no events, no remote control traffic.
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"confirm_publish": CONFIRM},
)

GET_METHODS = frozenset(["GET", "HEAD"])


class InvalidResponseError(Exception):
    """The remote server gave an invalid response."""


class RemoteExecuteError(Exception):
    """The remote task gave a custom error."""


class UnknownStatusError(InvalidResponseError):
    """The remote server gave an unknown status."""


def utf8dict(tup):
    """With a dict's items() tuple return a new dict with any utf-8 keys/values encoded."""
    return {
        k.encode("utf-8") if isinstance(k, str) else k: v.encode("utf-8") if isinstance(v, str) else v for k, v in tup
    }


def extract_response(raw_response, loads=json.loads):
    """Extract the response text from a raw JSON response."""
    if not raw_response:
        raise InvalidResponseError("Empty response")
    try:
        payload = loads(raw_response)
    except ValueError as exc:
        raise InvalidResponseError(str(exc)) from exc

    status = payload["status"]
    if status == "success":
        return payload["retval"]
    elif status == "failure":
        raise RemoteExecuteError(payload.get("reason"))
    else:
        raise UnknownStatusError(str(status))


class MutableURL:
    """Object wrapping a Uniform Resource Locator.

    Supports editing the query parameter list.
    You can convert the object back to a string, the query will be
    properly urlencoded.
    """

    def __init__(self, url):
        self.url = urlparse(url)
        self.query = dict(parse_qsl(self.url[4]))

    def __str__(self):
        scheme, netloc, path, params, query, fragment = self.url
        query = urlencode(utf8dict(self.query.items()))
        components = [
            scheme + "://",
            netloc,
            path or "/",
            f";{params}" if params else "",
            f"?{query}" if query else "",
            f"#{fragment}" if fragment else "",
        ]
        return "".join(c for c in components if c)

    def __repr__(self):
        return f"<{type(self).__name__}: {self}>"


_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


class HttpDispatch:
    """Make task HTTP request and collect the task result.

    :param url: The URL to request.
    :param method: HTTP method used. Currently supported methods are `GET`
        and `POST`.
    :param task_kwargs: Task keyword arguments.
    """

    user_agent = f"celery/{celery_version}"
    timeout = 5

    def __init__(self, url, method, task_kwargs, **kwargs):
        self.url = url
        self.method = method
        self.task_kwargs = task_kwargs

    def make_request(self, url, method, params):
        """Perform HTTP request and return the response."""
        response = _session().request(method, url, data=params, headers=self.http_headers, timeout=self.timeout)
        response.raise_for_status()  # user catches errors (urlopen raised HTTPError).
        return response.content

    def dispatch(self):
        """Dispatch callback and return result."""
        url = MutableURL(self.url)
        params = None
        if self.method in GET_METHODS:
            url.query.update(self.task_kwargs)
        else:
            params = urlencode(utf8dict(self.task_kwargs.items()))
        raw_response = self.make_request(str(url), self.method, params)
        return extract_response(raw_response)

    @property
    def http_headers(self):
        headers = {"User-Agent": self.user_agent}
        return headers


@app.task(name="celery.http_dispatch", bind=True, url=None, method=None)
def dispatch(self, url=None, method="GET", **kwargs):
    """Task dispatching to an URL.

    :keyword url: The URL location of the HTTP callback task.
    :keyword method: Method to use when dispatching the callback. Usually
        `GET` or `POST`.
    :keyword \\*\\*kwargs: Keyword arguments to pass on to the HTTP callback.

    .. attribute:: url

        If this is set, this is used as the default URL for requests.
        Default is to require the user of the task to supply the url as an
        argument, as this attribute is intended for subclasses.

    .. attribute:: method

        If this is set, this is the default method used for requests.
        Default is to require the user of the task to supply the method as an
        argument, as this attribute is intended for subclasses.
    """
    return HttpDispatch(url or self.url, method or self.method, kwargs).dispatch()


class URL(MutableURL):
    """HTTP Callback URL.

    Supports requesting an URL asynchronously.

    :param url: URL to request.
    :keyword dispatcher: Class used to dispatch the request.
        By default this is :func:`dispatch`.
    """

    http_dispatch_task = dispatch

    def __init__(self, url, dispatcher=None, app=None):
        super().__init__(url)
        self.app = app
        self.dispatcher = dispatcher or self.http_dispatch_task

    def get_async(self, **kwargs):
        return self.dispatcher.delay(str(self), "GET", **kwargs)

    def post_async(self, **kwargs):
        return self.dispatcher.delay(str(self), "POST", **kwargs)

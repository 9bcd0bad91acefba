"""The friendly facade: ``URL(...).send(...)`` returns a handle at once.

This is Celery's ``celery.task.http.URL`` (and its ``MutableURL``) on top of
the ``http_dispatch`` actor (:mod:`dispatch.actor`): it validates in the caller, keeps the URL's own query
editable as a dict, and leaves all the machinery to the actor.

The ``asend`` family is the same for asyncio code: the call is validated
and its message built in the caller, then the confirmed publish -- the very
one ``send`` makes -- runs in a thread (``asyncio.to_thread``), so the event
loop keeps running while RabbitMQ confirms, and the errors are ``send``'s.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .actor import HttpDispatch, default_dispatcher
from .redaction import redact_url
from .result import CallResult
from .urlsafety import check_url
from .validation import MAX_DELAY, check_delay, check_method, check_options, seconds_until, shape_options

__all__ = ["MAX_DELAY", "URL", "MutableURL"]


class URL:
    """An HTTP endpoint that speaks the callback protocol.

    >>> res = URL("http://example.com/multiply").send(x=10, y=10)
    >>> res.get(timeout=10)
    100

    ``method`` is GET, POST, PUT, PATCH or DELETE.  ``headers`` are sent on
    every attempt (no credentials here: they travel in the message; put them
    in the destinations file).  ``body`` is ``"form"`` or ``"json"``: how
    params travel in a method with a body (GET always uses the query).
    ``timeout`` (seconds per attempt), ``max_attempts`` and
    ``retry_schedule`` (seconds between later deliveries) override the
    worker's ``DISPATCH_TIMEOUT`` / ``DISPATCH_MAX_ATTEMPTS`` /
    ``DISPATCH_RETRY_SCHEDULE`` for calls sent through this URL.
    """

    def __init__(
        self,
        url: str,
        method: str = "GET",
        *,
        headers: Mapping[str, str] | None = None,
        body: str = "form",
        timeout: float | None = None,
        max_attempts: int | None = None,
        retry_schedule: Sequence[float] | None = None,
        dispatcher: HttpDispatch | None = None,
    ) -> None:
        if dispatcher is not None and not isinstance(dispatcher, HttpDispatch):
            raise ValueError(f"dispatcher must be an HttpDispatch instance, not {type(dispatcher).__name__}")
        #: The actor calls go through: the built-in ``http_dispatch`` unless given (``URL(u, dispatcher=billing)``).
        self.dispatcher = dispatcher
        parts = urlsplit(check_url(url))
        self.method = check_method(method)
        overrides = {"timeout": timeout, "max_attempts": max_attempts, "retry_schedule": retry_schedule}
        self.options = check_options(
            {**shape_options(headers, body), **{name: value for name, value in overrides.items() if value is not None}}
        )
        self._parts = parts._replace(query="")
        #: The URL's own query, editable before sending; a repeated key holds a list.
        self.query: dict[str, Any] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            previous = self.query.get(name)
            if previous is None:
                self.query[name] = value
            elif isinstance(previous, list):
                previous.append(value)
            else:
                self.query[name] = [previous, value]

    def __str__(self) -> str:
        return urlunsplit(self._parts._replace(query=urlencode(self.query, doseq=True)))

    def __repr__(self) -> str:
        return f"URL({redact_url(str(self))!r}, method={self.method!r})"

    def send(self, **params: Any) -> CallResult:
        """Queue a call with this URL's method; ``params`` go in the query (GET) or form body (POST)."""
        return self._send(self.method, params)

    def get_async(self, **params: Any) -> CallResult:
        """Queue a GET call (Celery's name)."""
        return self._send("GET", params)

    def post_async(self, **params: Any) -> CallResult:
        """Queue a POST call (Celery's name)."""
        return self._send("POST", params)

    def send_in(self, seconds: float, **params: Any) -> CallResult:
        """Queue a call to be performed no earlier than ``seconds`` from now (up to 30 days)."""
        return self._dispatcher.send_with_options(
            args=(str(self), self.method, params, self.options), delay=math.ceil(check_delay(seconds) * 1000)
        )

    def send_at(self, when: datetime, **params: Any) -> CallResult:
        """Queue a call to be performed no earlier than ``when``, an aware datetime (a past one: now)."""
        return self.send_in(seconds_until(when), **params)

    async def asend(self, **params: Any) -> CallResult:
        """:meth:`send` for asyncio code: the confirmed publish runs in a thread, the event loop keeps running.

        Bad input raises ``ValueError`` here, before anything is published.
        """
        return await self._asend(params, None)

    async def asend_in(self, seconds: float, **params: Any) -> CallResult:
        """:meth:`send_in` for asyncio code."""
        return await self._asend(params, math.ceil(check_delay(seconds) * 1000))

    async def asend_at(self, when: datetime, **params: Any) -> CallResult:
        """:meth:`send_at` for asyncio code."""
        return await self.asend_in(seconds_until(when), **params)

    def map(self, calls: Iterable[Mapping[str, Any]]) -> list[CallResult]:
        """Queue one call per parameter dict, with pipelined confirms: many times faster than a loop of ``send``.

        Returns one handle per call, in order, once RabbitMQ confirmed them
        all.  Every call is validated first: a bad one raises ``ValueError``
        and nothing is sent.
        """
        url = str(self)
        return self._dispatcher.send_many((url, self.method, params, self.options) for params in calls)

    @property
    def _dispatcher(self) -> HttpDispatch:
        return self.dispatcher or default_dispatcher()

    def _send(self, method: str, params: dict[str, Any]) -> CallResult:
        return self._dispatcher.send(str(self), method, params, self.options)

    async def _asend(self, params: dict[str, Any], delay: int | None) -> CallResult:
        dispatcher = self._dispatcher
        message = dispatcher.message_with_options(args=(str(self), self.method, params, self.options))
        return await asyncio.to_thread(dispatcher.enqueue, message, delay)


#: Celery's name for a URL whose query can be edited before sending: every :class:`URL` is one (``url.query``).
MutableURL = URL

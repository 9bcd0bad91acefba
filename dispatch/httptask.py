"""Celery's ``HttpDispatchTask``, so Celery's HTTP callback code ports by changing the import.

Celery (``celery.task.http``) sends a webhook call as a task::

    res = HttpDispatchTask.delay(url="http://example.com/multiply", method="GET", x=10, y=10)
    res.get()   # -> 100

and says "URL is a shortcut to HttpDispatchTask; subclass it to extend".
Here the class is a thin front on :class:`~dispatch.URL` and the actor it
sends through: ``delay``/``apply_async`` build the URL and send it, so the
handle is a :class:`~dispatch.CallResult` (``get()``, ``aget()``,
``cancel()``), validation happens in the caller as for every send, and a
subclass sets Celery's ``url`` and ``method`` (the defaults when ``delay``
is given none) -- or ``dispatcher``, an
:class:`~dispatch.HttpDispatch` subclass's instance, to change the request
or how the answer is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from .actor import HttpDispatch
from .result import CallResult
from .url import URL


class HttpDispatchTask:
    """Celery's HTTP dispatch task: ``HttpDispatchTask.delay(url=..., method=..., **params)`` -> a handle.

    Subclass it as Celery's page says: a class's ``url`` and ``method`` are the
    defaults, used when ``delay`` is given none (Celery's task does
    ``url or self.url``), and ``dispatcher`` picks the actor the calls go through.
    """

    #: The endpoint of a call given no ``url``; ``None``: a ``url`` must be given.
    url: ClassVar[str | None] = None
    #: The method of a call given no ``method``; ``None``: GET.
    method: ClassVar[str | None] = None
    #: The actor calls go through (an :class:`~dispatch.HttpDispatch` instance); ``None``: the built-in one.
    dispatcher: ClassVar[HttpDispatch | None] = None

    @classmethod
    def delay(cls, url: str | None = None, method: str | None = None, **params: Any) -> CallResult:
        """Queue a call of ``url`` with ``params``; its handle at once (``get()`` gives the ``retval``)."""
        return cls.apply_async(kwargs={"url": url, "method": method, **params})

    @classmethod
    def apply_async(
        cls,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
    ) -> CallResult:
        """Celery's ``apply_async``: ``args`` are ``(url, method)``, ``kwargs`` the call's params (and
        ``url``/``method``); ``countdown`` seconds or an aware ``eta`` send it for later."""
        if len(args) > 2:
            raise ValueError(f"{cls.__name__}.apply_async takes args (url, method), not {len(args)} values")
        params = dict(kwargs or {})
        given = {"url": params.pop("url", None), "method": params.pop("method", None)}
        given.update(zip(("url", "method"), args, strict=False))
        url, method = given["url"] or cls.url, given["method"] or cls.method or "GET"
        if not url:
            raise ValueError(f"{cls.__name__}: no url given, and the class sets none")
        target = URL(url, method, dispatcher=cls.dispatcher)
        if eta is not None:
            return target.send_at(eta, **params)
        if countdown is not None:
            return target.send_in(countdown, **params)
        return target.send(**params)

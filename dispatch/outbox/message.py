"""The message a call sent through the outbox carries: built and validated exactly as ``URL.send`` builds it.

Both writers -- :class:`~dispatch.outbox.Outbox` for SQLAlchemy and the
Django app's ``outbox`` -- turn ``(url, params[, delay])`` into a message
here, through the actor's ``message_with_options``, the one validation path
of every send: bad input raises ``ValueError`` in the caller before any row
is written.  A call for later is the message dramatiq's ``enqueue(delay=)``
would publish -- on ``<queue>.DQ`` with its ``eta`` -- so the delay counts
from the send, not from the relay, and the row needs no column of its own
for it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import dramatiq
from dramatiq.common import current_millis, dq_name

from ..actor import default_dispatcher
from ..result import CallResult
from ..url import URL
from ..validation import check_delay, seconds_until

__all__ = ["call_message", "is_scheduled", "seconds_until"]


def call_message(url: URL | str, params: Mapping[str, Any], delay: float | None = None) -> CallResult:
    """The message ``URL(url).send(**params)`` would publish, or ``send_in(delay, **params)`` with a delay.

    ``url`` is a :class:`~dispatch.URL` (its method, headers, options and
    dispatcher apply) or a string (a GET through the built-in actor).
    """
    if not isinstance(url, URL):
        url = URL(url)
    dispatcher = url.dispatcher or default_dispatcher()
    message = dispatcher.message_with_options(args=(str(url), url.method, dict(params), url.options))
    if delay is None:
        return message
    eta = current_millis() + math.ceil(check_delay(delay) * 1000)
    return dataclasses.replace(message, queue_name=dq_name(message.queue_name), options={**message.options, "eta": eta})


def is_scheduled(message: dramatiq.Message, now_ms: int) -> bool:
    """Whether ``message`` is a call for later whose time has not come (its state is recorded ``scheduled``)."""
    eta = message.options.get("eta")
    return isinstance(eta, (int, float)) and eta > now_ms

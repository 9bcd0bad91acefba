"""Whether a worker consumes a queue, asked of RabbitMQ over AMQP: why a call still has no outcome.

``ResultTimeout`` from ``res.get()`` and the CLI's ``dispatch call --wait`` /
``dispatch result`` both say it when it is plain -- "no worker is consuming
queue 'dispatch'" -- from :func:`no_outcome_reason`, asked only once a wait has
run out: one connection and a passive ``queue_declare`` (no management plugin
needed).  A burst of timed-out waits (a CLI awaiting many calls, an
application's threads) asks RabbitMQ once: the answer is kept a few seconds.

pika is imported by :func:`broker_connection` when it runs, so the CLI's
``--help`` stays quick.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from typing import Any

from .settings import Settings

#: Seconds an answer of :func:`no_outcome_reason` is reused for the same broker and queue.
REASON_KEPT_SECONDS = 5.0

_lock = threading.Lock()
_reasons: dict[tuple[str, str], tuple[float, str]] = {}


def broker_connection(settings: Settings) -> Any:
    """A connection to DISPATCH_BROKER_URL for one question: one try per node, 5 s each; pika's error if none."""
    import pika

    from .cluster import connection_parameters

    parameters = connection_parameters(settings.broker_url)
    for node in parameters:
        node.connection_attempts, node.socket_timeout, node.blocked_connection_timeout = 1, 5, 5
    return pika.BlockingConnection(parameters)


def is_missing_queue(error: BaseException) -> bool:
    """pika's channel error for a queue that does not exist (AMQP 404 NOT_FOUND)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return "ChannelClosedByBroker" in names and getattr(error, "reply_code", None) == 404


def consumer_count(settings: Settings, queue: str | None = None) -> int | None:
    """How many consumers ``queue`` (the calls queue by default) has; 0 if it does not exist; None if unknown."""
    if settings.stub_broker:
        return None
    try:
        connection = broker_connection(settings)
    except Exception:
        return None
    try:
        return connection.channel().queue_declare(queue or settings.queue, passive=True).method.consumer_count
    except Exception as exc:
        return 0 if is_missing_queue(exc) else None
    finally:
        with suppress(Exception):
            connection.close()


def no_outcome_reason(settings: Settings, queue: str | None = None) -> str:
    """Why a call on ``queue`` (the calls queue by default) still has no outcome, when it is plain: no worker."""
    queue = queue or settings.queue
    key = (settings.broker_url, queue)
    now = time.monotonic()
    with _lock:
        kept = _reasons.get(key)
    if kept is not None and now - kept[0] < REASON_KEPT_SECONDS:
        return kept[1]
    reason = _reason(consumer_count(settings, queue), queue)
    with _lock:
        _reasons[key] = (now, reason)
    return reason


def _reason(consumers: int | None, queue: str) -> str:
    if consumers == 0:
        return (
            f"no worker is consuming queue {queue!r} -- start one with "
            "`dispatch worker` (or `dramatiq dispatch.tasks`); the call stays queued until then"
        )
    if consumers:
        return f"{consumers} worker(s) consume queue {queue!r}: the call is still queued or running"
    return "the call may still be queued or running"

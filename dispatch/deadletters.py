"""Dead letters you can act on: list, replay and purge ``<DISPATCH_QUEUE>.XQ``.

A call that fails for good is rejected by the worker and RabbitMQ moves it
to the dead-letter queue, unchanged -- so the message there is exactly the
call that was sent, message id included.  Its error is read from the
results store (the dead-lettered body cannot carry it) and its time from
RabbitMQ's ``x-death`` header.

Replaying publishes the same message, with the same id, back on the work
queue, and only acknowledges (removes) the dead letter once RabbitMQ has
confirmed the new copy.  The old outcome is forgotten first, so a handle's
``get()`` waits for the new one instead of returning the old failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime

import pika
from dramatiq import Message
from dramatiq.common import q_name, xq_name
from dramatiq.results import ResultFailure, ResultMissing

from .call import Call
from .cluster import connection_parameters
from .publisher import publish
from .result import CallResult
from .runtime import get_runtime

#: Options dramatiq's middleware adds while a message is processed; a replay starts afresh.
_DELIVERY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta")


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One call in the dead-letter queue."""

    message_id: str
    url: str
    method: str
    error: str
    failed_at: datetime | None

    def asdict(self) -> dict:
        return {**dataclasses.asdict(self), "failed_at": self.failed_at.isoformat() if self.failed_at else None}


@contextmanager
def _dead_letter_channel() -> Iterator[tuple[pika.adapters.blocking_connection.BlockingChannel, str]]:
    """A channel of our own on the dead-letter queue.

    Messages fetched and not acknowledged return to the queue when it
    closes -- which is how listing leaves the queue as it was.
    """
    settings = get_runtime().settings
    connection = pika.BlockingConnection(connection_parameters(settings.broker_url))  # any node of a cluster
    try:
        channel = connection.channel()
        queue = xq_name(settings.queue)
        channel.queue_declare(queue, passive=True)
        yield channel, queue
    finally:
        connection.close()


def _fetch_all(channel, queue: str) -> Iterator[tuple[int, Message, pika.BasicProperties]]:
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return
        yield method.delivery_tag, Message.decode(body), properties


def _error_of(message: Message) -> str:
    try:
        CallResult(**message.asdict()).get_result(block=False)
    except ResultFailure as failure:
        return f"{failure.orig_exc_type}: {failure.orig_exc_msg}"
    except ResultMissing:
        return "unknown (its outcome has expired from the results store)"
    return "unknown"


def _failed_at(properties: pika.BasicProperties) -> datetime | None:
    deaths = (properties.headers or {}).get("x-death") or []
    return deaths[0].get("time") if deaths else None


def list_dead(limit: int | None = None) -> list[DeadLetter]:
    """The calls in the dead-letter queue, oldest first; the queue is left unchanged."""
    letters = []
    with _dead_letter_channel() as (channel, queue):
        for _, message, properties in _fetch_all(channel, queue):
            call = Call.from_message(message)
            letters.append(
                DeadLetter(message.message_id, call.url, call.method, _error_of(message), _failed_at(properties))
            )
            if limit is not None and len(letters) >= limit:
                break
    return letters


def replay(message_ids: Collection[str] | None = None) -> list[str]:
    """Send dead calls again under their own ids (``None``: all of them); returns the ids replayed."""
    runtime = get_runtime()
    replayed = []
    with _dead_letter_channel() as (channel, queue):
        for tag, message, _ in _fetch_all(channel, queue):
            if message_ids is not None and message.message_id not in message_ids:
                continue
            options = {k: v for k, v in message.options.items() if k not in _DELIVERY_OPTIONS}
            fresh = dataclasses.replace(message, queue_name=q_name(message.queue_name), options=options)
            runtime.results.forget(fresh)
            publish(runtime.broker, fresh, None, runtime.settings.send_timeout)
            channel.basic_ack(tag)
            replayed.append(message.message_id)
    return replayed


def purge() -> int:
    """Delete every dead letter; returns how many there were."""
    with _dead_letter_channel() as (channel, queue):
        return channel.queue_purge(queue).method.message_count

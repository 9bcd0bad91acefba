"""Dead letters you can act on: list, replay, discard and purge ``<DISPATCH_QUEUE>.XQ``.

A call that fails for good is rejected by the worker and RabbitMQ moves it
to the dead-letter queue, unchanged -- so the message there is exactly the
call that was sent, message id included.  Its error is read from the
results store (the dead-lettered body cannot carry it) and its time from
RabbitMQ's ``x-death`` header.

Replaying publishes the same message, with the same id, back on the work
queue, and only acknowledges (removes) the dead letter once RabbitMQ has
confirmed the new copy.  The old outcome is forgotten first, so a handle's
``get()`` waits for the new one instead of returning the old failure (and the
worker's claim does not find the call done).  A replay that is not confirmed
-- RabbitMQ unreachable, refusing, or blocking publishers -- stores the old
failure again: the dead letter stays, and ``get()`` keeps raising its error
rather than waiting for an outcome that no queued call will bring.  A copy
RabbitMQ held and queues after an alarm then finds the call done and is acked
unsent; the dead letter can be replayed again.

**A dead letter is replayed once**, even when two operators (the console, the
CLI) replay it at the same moment.  ``basic_get`` hands a message to one
channel only, but a replayed call that fails again at once is dead-lettered
anew within milliseconds, and a replay still reading the queue would fetch
and publish it a second time.  So each replay first claims the call's id in
Redis (``SET NX``, :data:`REPLAY_WINDOW_SECONDS`): a dead letter whose id was
replayed within the window is left where it is, by this replay and by every
other.  A claim whose publish failed is given back at once.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pika
from dramatiq import Message
from dramatiq.common import q_name, xq_name
from dramatiq.results import ResultFailure, ResultMissing

from .call import Call
from .cluster import connection_parameters
from .errors import error_from_result
from .publisher import publish
from .redaction import get_logger, redact, redact_url
from .result import CallResult
from .results import NAMESPACE, CallResultsBackend
from .runtime import get_runtime

logger = get_logger(__name__)

#: Options dramatiq's middleware adds while a message is processed; a replay starts afresh.
_DELIVERY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta")

#: How long a replayed id stays claimed: a dead letter with that id is not replayed again before.
REPLAY_WINDOW_SECONDS = 60

# KEYS: the claim.  ARGV: the claimant's token.  Deletes the claim only if it is still that claimant's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One call in the dead-letter queue, fit to show: its URL and error redacted (replaying uses the message)."""

    message_id: str
    url: str
    method: str
    error: str
    failed_at: datetime | None

    def asdict(self) -> dict:
        return {**dataclasses.asdict(self), "failed_at": self.failed_at.isoformat() if self.failed_at else None}

    @property
    def host(self) -> str:
        """The host (and port, if the URL names one) the call went to."""
        return urlsplit(self.url).netloc.rpartition("@")[2]

    @property
    def error_class(self) -> str:
        """The error's class name (``TransportError``), or ``unknown``."""
        name, sep, _ = self.error.partition(": ")
        return name if sep and name.isidentifier() else "unknown"


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


def _stored_outcome(message: Message) -> ResultFailure | ResultMissing | None:
    """The call's stored failure, ResultMissing if no outcome is stored (expired, forgotten), None for a success."""
    try:
        CallResult(**message.asdict()).get_result(block=False)
    except (ResultFailure, ResultMissing) as outcome:
        return outcome
    return None


def _error_of(message: Message) -> str:
    outcome = _stored_outcome(message)
    if isinstance(outcome, ResultFailure):
        return f"{outcome.orig_exc_type}: {outcome.orig_exc_msg}"
    if isinstance(outcome, ResultMissing):
        return "unknown (its outcome has expired from the results store)"
    return "unknown"


def _store_again(message: Message, outcome: ResultFailure | ResultMissing | None, error: BaseException) -> None:
    """Put back the failure a replay forgot before its publish failed with ``error``."""
    if not isinstance(outcome, ResultFailure):
        return
    runtime = get_runtime()
    failure = error_from_result(outcome.orig_exc_type, outcome.orig_exc_msg)  # as get() raised it before
    try:
        runtime.results.store_exception(message, failure, int(runtime.settings.result_ttl * 1000))
    except Exception as store_error:
        logger.error(
            "call %s: its replay was not sent (%s) and its old failure could not be stored again (%s)",
            message.message_id,
            error,
            store_error,
        )


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
                DeadLetter(
                    message.message_id,
                    redact_url(call.url),
                    call.method,
                    redact(_error_of(message)),
                    _failed_at(properties),
                )
            )
            if limit is not None and len(letters) >= limit:
                break
    return letters


class _Claims:
    """Replay claims in Redis, one per call id, so no two replays publish the same dead letter."""

    def __init__(self) -> None:
        results = get_runtime().results
        self.client: Any = results.write_client if isinstance(results, CallResultsBackend) else None
        self.token = uuid.uuid4().hex
        self._release = self.client.register_script(_RELEASE) if self.client is not None else None

    @staticmethod
    def key(message_id: str) -> str:
        return f"{NAMESPACE}:{{{message_id}}}:replay"

    def take(self, message_id: str) -> bool:
        """True if this replay may publish ``message_id`` (no other replay did within the window)."""
        if self.client is None:  # outcomes in memory: one process, no dead-letter queue to share
            return True
        return bool(self.client.set(self.key(message_id), self.token, nx=True, px=REPLAY_WINDOW_SECONDS * 1000))

    def give_back(self, message_id: str) -> None:
        if self._release is not None:
            self._release(keys=[self.key(message_id)], args=[self.token])


def replay(message_ids: Collection[str] | None = None) -> list[str]:
    """Send dead calls again under their own ids (``None``: all of them); returns the ids replayed.

    A dead letter whose id any replay (this one included) published within the last
    :data:`REPLAY_WINDOW_SECONDS` is left in the queue, not replayed twice.
    """
    runtime = get_runtime()
    claims = _Claims()
    replayed = []
    with _dead_letter_channel() as (channel, queue):
        for tag, message, _ in _fetch_all(channel, queue):  # a letter fetched and skipped is held until the end
            if message_ids is not None and message.message_id not in message_ids:
                continue
            if not claims.take(message.message_id):
                continue
            options = {k: v for k, v in message.options.items() if k not in _DELIVERY_OPTIONS}
            options["replays"] = options.get("replays", 0) + 1  # an outcome from before it is not stored
            fresh = dataclasses.replace(message, queue_name=q_name(message.queue_name), options=options)
            outcome = _stored_outcome(fresh)
            try:
                runtime.results.forget(fresh)
                publish(runtime.broker, fresh, None, runtime.settings.send_timeout)
            except BaseException as error:
                claims.give_back(message.message_id)  # not published: it may be replayed again at once
                _store_again(fresh, outcome, error)
                raise
            channel.basic_ack(tag)
            replayed.append(message.message_id)
    return replayed


def discard(message_ids: Collection[str]) -> list[str]:
    """Delete these dead calls (those still in the queue); returns the ids discarded."""
    discarded = []
    with _dead_letter_channel() as (channel, queue):
        for tag, message, _ in _fetch_all(channel, queue):
            if message.message_id in message_ids:
                channel.basic_ack(tag)
                discarded.append(message.message_id)
    return discarded


def purge() -> int:
    """Delete every dead letter; returns how many there were."""
    with _dead_letter_channel() as (channel, queue):
        return channel.queue_purge(queue).method.message_count

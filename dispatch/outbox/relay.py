"""The relay: publishes the calls committed to an outbox table, and deletes each once RabbitMQ confirmed it.

One pass claims a batch in a transaction -- ``SELECT ... ORDER BY id LIMIT n
FOR UPDATE SKIP LOCKED`` -- publishes it with pipelined publisher confirms
(:func:`dispatch.publisher.publish_many`), deletes the rows RabbitMQ
confirmed and commits.  What that gives:

* **Nothing is lost.**  A row is deleted only after its confirm, in the
  transaction that holds its lock.  A relay killed at any moment leaves its
  rows in the table, unlocked as soon as PostgreSQL sees the connection go;
  one killed between the publish and the commit leaves rows that are
  published again, *with the same message id* -- the same
  ``Idempotency-Key`` for the endpoint.  A publish that stops half-way
  (RabbitMQ blocked or gone) still deletes the rows it had confirmed.
* **Several relays share the work.**  ``SKIP LOCKED`` gives each its own
  rows; while relays are healthy no row is published twice.
* **Order.**  A relay publishes each batch in id order, and the ids are
  handed out as rows are inserted: the calls of one transaction go in the
  order they were sent, and a call committed before a pass began goes before
  any committed after it.  Two transactions committing at about the same
  time may be published in either order, and several relays publish their
  batches side by side.
* **A row that is not a message** (written by hand, or corrupted) is moved
  to ``<table>_dead`` in the claiming transaction and logged once, so the
  calls after it go on; without that table it stays, logged once.
* **A call for later** is published to ``<queue>.DQ`` with the ``eta`` set at
  send, so its delay counts from the send; its state is recorded as
  ``scheduled`` here, just before it is published (cancel() works before and
  after).

A pass that fails (database or RabbitMQ unreachable) is logged and tried
again after a pause that grows to :data:`MAX_PAUSE`; the relay never exits
because a service went away.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import sqlalchemy as sa
from dramatiq.common import current_millis

from ..errors import BrokerUnavailable, DispatchError, PublishRefused
from ..publisher import publish_many
from ..redaction import get_logger
from ..runtime import get_runtime
from . import table as _table
from .listener import Listener, Waker
from .message import is_scheduled
from .sending import Outbox

logger = get_logger("dispatch.outbox")

#: Longest pause between two failed passes, in seconds.
MAX_PAUSE = 5.0


@dataclasses.dataclass
class Relay:
    """Publishes ``outbox``'s committed calls: :meth:`run` until stopped, or :meth:`run_once`."""

    outbox: Outbox
    #: Rows claimed, published and deleted per transaction.
    batch_size: int = 500
    #: Seconds between two passes when no notification wakes the relay (every pass on SQLite).
    poll_interval: float = 1.0

    #: Ids of undecodable rows that could not be moved aside (no ``<table>_dead``): logged once, skipped.
    _stuck: set[int] = dataclasses.field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or not self.poll_interval > 0:
            raise ValueError("a relay needs batch_size >= 1 and poll_interval > 0")

    def run_once(self) -> int:
        """Publish every call committed so far (batch after batch, until one comes back short); how many."""
        return self._drain(threading.Event())

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` is set: a pass at start, at each notification and every ``poll_interval``."""
        stop = stop or threading.Event()
        waker = self._waker(stop)
        logger.info(
            "relaying %s (%s)",
            self.outbox,
            f"LISTEN/NOTIFY, polling every {self.poll_interval:g}s"
            if isinstance(waker, Listener)
            else f"polling every {self.poll_interval:g}s",
        )
        pause = 0.0
        try:
            while not stop.is_set():
                try:
                    self._drain(stop)
                except Exception as error:  # a service away for a while: the relay waits for it, never exits
                    pause = min(max(pause * 2, 0.25), MAX_PAUSE)
                    expected = isinstance(error, (sa.exc.SQLAlchemyError, DispatchError))
                    logger.warning(
                        "relay pass failed, next in %.2gs: %s", pause, describe_failure(error), exc_info=not expected
                    )
                    stop.wait(pause)
                    continue
                pause = 0.0
                waker.wait(self.poll_interval)
        finally:
            waker.close()

    def _drain(self, stop: threading.Event) -> int:
        """Passes until one comes back short (or publishes nothing), or ``stop`` is set; the calls published."""
        relayed = 0
        while not stop.is_set():
            claimed, published, left = self._pass()
            relayed += published
            if claimed < self.batch_size or left == claimed:  # the table is drained, or nothing moved
                break
        return relayed

    def _waker(self, stop: threading.Event) -> Waker:
        engine = self.outbox.engine
        if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
            listener = Listener(stop, engine, _table.channel(self.outbox.table))
            listener.connect()  # before the first pass: a commit after it wakes the one after
            return listener
        return Waker(stop)

    def _pass(self) -> tuple[int, int, int]:
        """Claim a batch, publish it, delete what was confirmed; (rows claimed, published, left in the table)."""
        runtime = get_runtime()
        with self.outbox.engine.begin() as connection:
            rows = _table.claim(connection, self.outbox.table, self.batch_size)
            if not rows:
                return 0, 0, 0
            messages = {row.id: message for row in rows if (message := self._decoded(connection, row)) is not None}
            now = current_millis()
            for message in messages.values():
                if is_scheduled(message, now):  # recorded first, as send_in() does: never seen as unknown
                    runtime.call_states.schedule(message.message_id, message.options["eta"] - now)
            stopped: BrokerUnavailable | None = None
            try:
                publish_many(runtime.broker, list(messages.values()), runtime.settings.send_timeout)
                published = list(messages)
            except PublishRefused as refused:
                sent = {message.message_id for message in refused.sent}
                published = [row_id for row_id, message in messages.items() if message.message_id in sent]
                logger.error("%s; the refused calls stay in the outbox for the next pass", refused)
            except BrokerUnavailable as unavailable:  # blocked or gone half-way: what it confirmed is sent
                unconfirmed = set(unavailable.message_ids)  # empty: not known, so no row is taken for sent
                confirmed = {m.message_id for m in messages.values()} - unconfirmed if unconfirmed else set()
                published = [row_id for row_id, message in messages.items() if message.message_id in confirmed]
                stopped = unavailable
            _table.delete(connection, self.outbox.table, published)
        if stopped is not None:  # raised once the confirmed rows' deletion is committed: they are not sent twice
            raise stopped
        logger.debug("relayed %d of %d claimed calls", len(published), len(rows))
        return len(rows), len(published), len(messages) - len(published) + len(self._stuck & {row.id for row in rows})

    def _decoded(self, connection: sa.Connection, row: _table.Row) -> dramatiq.Message | None:
        """The row's message; None for a row that is not one, moved to ``<table>_dead`` (or, without it, left)."""
        try:
            return dramatiq.Message.decode(row.message)
        except dramatiq.errors.DecodeError as error:
            reason = f"{type(error.error).__name__}: {error.error}"
        dead = self.outbox.dead_table
        try:
            with connection.begin_nested():  # a savepoint: a missing table fails this, not the batch
                _table.move_aside(connection, self.outbox.table, dead, row.id, reason)
        except sa.exc.SQLAlchemyError as failure:
            if row.id not in self._stuck:
                self._stuck.add(row.id)
                logger.error(
                    "outbox row %d (call %s) is not a message (%s) and cannot be moved to %s (%s): it stays "
                    "in the outbox, skipped; create that table with `dispatch outbox init`",
                    row.id, row.message_id, reason, dead.fullname, describe_failure(failure),
                )  # fmt: skip
            return None
        logger.error("outbox row %d (call %s) is not a message, moved to %s: %s", row.id, row.message_id, dead.fullname,
                     reason)  # fmt: skip
        return None


def describe_failure(error: BaseException) -> str:
    """One line for the log: SQLAlchemy's own messages run to a dozen lines with the SQL and a link."""
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).strip().splitlines()[0]}"
    return f"{type(error).__name__}: {error}"


@contextmanager
def stopped_by_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (the relay finishes its batch and exits); handlers restored after."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_relay(outbox: Outbox, *, once: bool = False, batch_size: int = 500, poll_interval: float = 1.0) -> int:
    """What ``dispatch relay`` and ``manage.py dispatch_relay`` run: one pass (``once``), or until signalled.

    Returns the calls published by the single pass (0 after a run until signalled).
    """
    relay = Relay(outbox, batch_size=batch_size, poll_interval=poll_interval)
    if once:
        return relay.run_once()
    with stopped_by_signals() as stop:
        relay.run(stop)
    return 0

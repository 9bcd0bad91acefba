"""Waking a relay when a sender commits: PostgreSQL ``LISTEN``, or a plain timer.

A sender's ``NOTIFY`` is delivered when its transaction commits, so a relay
listening on the table's channel runs its next pass within milliseconds of
the commit instead of at its next poll.  Notifications are a wake-up, not a
queue: PostgreSQL drops them for a listener that is not connected, so the
relay also passes every ``poll_interval`` seconds and after every
reconnection -- a notification missed costs at most one interval.

The listening connection is one of its own, taken out of the engine's pool
(so the pool never hands out a connection left in autocommit) and made
again, a second later, whenever it breaks.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from ..redaction import get_logger

logger = get_logger("dispatch.outbox")

#: Seconds before a broken listening connection is made again.
_RECONNECT_PAUSE = 1.0


class Waker:
    """Sleeps until ``stop`` is set or the timeout passes (databases without ``LISTEN``)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def wait(self, timeout: float) -> None:
        self.stop.wait(timeout)

    def close(self) -> None:
        pass


class Listener(Waker):
    """Also wakes when a ``NOTIFY`` arrives on ``channel`` (PostgreSQL with psycopg 3)."""

    def __init__(self, stop: threading.Event, engine: sa.Engine, channel: str) -> None:
        super().__init__(stop)
        self.engine = engine
        self.channel = channel
        self._connection: Any = None
        self._broken_at = 0.0

    def connect(self) -> bool:
        """Listen (again), unless it broke less than a second ago; whether a connection is listening now."""
        if self._connection is not None:
            return True
        if time.monotonic() - self._broken_at < _RECONNECT_PAUSE:
            return False
        try:
            pooled = self.engine.raw_connection()
            connection: Any = pooled.driver_connection  # a psycopg.Connection
            pooled.detach()  # closed for good by close(), never returned to the pool in autocommit
            connection.autocommit = True
            quoted = self.engine.dialect.identifier_preparer.quote_identifier(self.channel)
            connection.execute(f"LISTEN {quoted}")
        except Exception as error:  # a database down is the relay's to report; here it only means "poll"
            logger.debug("cannot LISTEN on %s yet: %s", self.channel, error)
            self._broken_at = time.monotonic()
            return False
        self._connection = connection
        return True

    def wait(self, timeout: float) -> None:
        """Return at the first notification, when ``stop`` is set, or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if not self.connect():
                self.stop.wait(min(left, _RECONNECT_PAUSE))
                continue
            try:
                # Slices of at most a second, so a stop request is seen soon.
                if any(True for _ in self._connection.notifies(timeout=min(left, 1.0), stop_after=1)):
                    self._drain()
                    return
            except Exception as error:
                logger.warning("lost the LISTEN connection on %s (%s); polling until it is back", self.channel, error)
                self.close()
                self._broken_at = time.monotonic()
                return  # a pass now: notifications sent while it was down are lost

    def _drain(self) -> None:
        """Swallow notifications already here: one pass answers them all."""
        for _ in self._connection.notifies(timeout=0.0):
            pass

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception as error:
                logger.debug("closing the LISTEN connection: %s", error)
            self._connection = None

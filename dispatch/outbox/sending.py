"""``Outbox``: calls written with the application's own SQLAlchemy transaction, published once it commits.

``outbox.send(conn, url, **params)`` validates the call as ``url.send``
would, writes its message as a row of the outbox table in ``conn``'s
transaction and returns the call's :class:`~dispatch.CallResult` at once.
Nothing reaches RabbitMQ here: a relay (:mod:`dispatch.outbox.relay`)
publishes the rows that were committed, so a rollback sends nothing and a
crash after the commit loses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..result import CallResult
from ..url import URL
from . import table as _table
from .message import call_message, seconds_until


def engine_for(url: str | sa.URL) -> sa.Engine:
    """An engine for a database URL; a plain ``postgresql://`` URL gets psycopg 3 (SQLAlchemy's default is psycopg2)."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, pool_pre_ping=True)


class Outbox:
    """The outbox table of one database: write calls into it with your transaction; relays publish them.

    ``url_or_engine`` is a SQLAlchemy URL (``postgresql+psycopg://app@db/app``,
    ``sqlite:///local.db``) or an Engine; ``table`` may be ``schema.name``.
    Every sending method takes the connection first and the URL second, then
    what the same method of :class:`~dispatch.URL` takes:
    ``outbox.send_in(conn, url, 30, x=1)`` is ``url.send_in(30, x=1)`` sent
    with ``conn``'s transaction.
    """

    def __init__(self, url_or_engine: str | sa.URL | sa.Engine, table: str = _table.DEFAULT_TABLE) -> None:
        #: The engine relays, ``create_table()`` and ``backlog()`` use (the one given, or one made from the URL).
        self.engine = url_or_engine if isinstance(url_or_engine, sa.Engine) else engine_for(url_or_engine)
        #: The outbox table as SQLAlchemy Core sees it.
        self.table = _table.outbox_table(table)
        #: Where the relay moves a row it cannot decode: ``<table>_dead``.
        self.dead_table = _table.dead_table(self.table)

    def __repr__(self) -> str:
        return f"Outbox({self.engine.url!r}, table={self.table.fullname!r})"

    def create_table(self) -> None:
        """Create the table and its ``<table>_dead`` (nothing else) where they do not exist yet; safe to run again."""
        self.table.create(self.engine, checkfirst=True)
        self.dead_table.create(self.engine, checkfirst=True)

    def send(self, conn: sa.Connection | Session, url: URL | str, /, **params: Any) -> CallResult:
        """Write a call to ``url`` with ``params`` in ``conn``'s transaction; its handle, at once.

        It is published only if that transaction commits.  Bad input raises
        ``ValueError`` here and nothing is written.
        """
        return self._write(conn, call_message(url, params))

    def send_in(self, conn: sa.Connection | Session, url: URL | str, seconds: float, /, **params: Any) -> CallResult:
        """:meth:`send`, performed no earlier than ``seconds`` after this call (not after the commit)."""
        return self._write(conn, call_message(url, params, seconds))

    def send_at(self, conn: sa.Connection | Session, url: URL | str, when: datetime, /, **params: Any) -> CallResult:
        """:meth:`send`, performed no earlier than ``when`` (a timezone-aware datetime; a past one: now)."""
        return self._write(conn, call_message(url, params, seconds_until(when)))

    def backlog(self) -> _table.Backlog:
        """Calls committed and not yet published, and the age in seconds of the oldest (None when empty)."""
        with self.engine.connect() as connection:
            return _table.backlog(connection, self.table)

    def _write(self, conn: sa.Connection | Session, message: CallResult) -> CallResult:
        connection = conn.connection() if isinstance(conn, Session) else conn
        if not isinstance(connection, sa.Connection):
            raise TypeError(f"send() takes a SQLAlchemy Connection or Session, not {type(conn).__name__}")
        _table.insert(connection, self.table, message.message_id, message.queue_name, message.encode())
        return message

"""The outbox table: its layout, the row a call becomes, and what the relay asks of it.

One row per call waiting to be published, deleted once RabbitMQ confirmed it::

    id          bigint, increasing (identity)   the order rows are relayed in
    message_id  varchar(64), unique             the call's id: CallResult.message_id, Idempotency-Key
    queue_name  varchar(255)                    where it goes (``<queue>.DQ`` for a call sent for later)
    message     bytes                           the encoded dramatiq message, exactly as it is published
    created_at  timestamp with time zone        when the sending transaction wrote it (its start time)

A row the relay cannot decode is moved, in the transaction that claimed it,
to ``<table>_dead`` (:func:`dead_table`: the same columns, and when and why)
so that it never blocks the calls after it; nothing else writes there.

The Django app's migrations (:mod:`dispatch.contrib.django`) create the same
layout, and both writers set ``created_at`` themselves, so a table made by
either serves the other.  On PostgreSQL a sender also sends a ``NOTIFY`` on
the table's channel in the same transaction: PostgreSQL delivers it at
commit, and only then, which is what wakes a listening relay.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Sequence

import sqlalchemy as sa

#: The table's name unless told otherwise (``Outbox(url, table=...)``).
DEFAULT_TABLE = "dispatch_outbox"


def outbox_table(name: str = DEFAULT_TABLE) -> sa.Table:
    """The table ``name`` (``schema.table`` for one outside the search path), in a metadata of its own."""
    schema, _, table = name.rpartition(".")
    return sa.Table(
        table,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("queue_name", sa.String(255), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=schema or None,
    )


def dead_table(table: sa.Table) -> sa.Table:
    """``<table>_dead``, beside ``table``: the rows the relay could not decode, with when and why, for a person."""
    return sa.Table(
        f"{table.name}_dead",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("queue_name", sa.String(255), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        schema=table.schema,
    )


def channel(table: sa.Table) -> str:
    """The ``LISTEN``/``NOTIFY`` channel of ``table``: its full name (PostgreSQL keeps 63 bytes of it)."""
    return table.fullname[:63]


def insert(connection: sa.Connection, table: sa.Table, message_id: str, queue_name: str, message: bytes) -> None:
    """Write one call's row in ``connection``'s transaction, and on PostgreSQL the NOTIFY its commit delivers."""
    values = {"message_id": message_id, "queue_name": queue_name, "message": message}
    connection.execute(_insert_statement(table, connection.dialect.name == "postgresql"), values)


@functools.lru_cache(maxsize=64)
def _insert_statement(table: sa.Table, notify: bool) -> sa.Executable:
    """The INSERT, built once per table (SQLAlchemy then reuses its compiled form).

    With ``notify``: one statement and one round trip for both, ``WITH call AS
    (INSERT ... RETURNING id) SELECT pg_notify(channel, '') FROM call``.
    PostgreSQL folds a transaction's identical notifications into one.
    """
    columns = ("message_id", "queue_name", "message")
    statement = table.insert().values(**{name: sa.bindparam(name) for name in columns}, created_at=sa.func.now())
    if not notify:
        return statement
    written = statement.returning(table.c.id).cte("call")
    return sa.select(sa.func.pg_notify(channel(table), "")).select_from(written)


@dataclasses.dataclass(frozen=True)
class Row:
    """A claimed row: its id, its call's id and the message as stored."""

    id: int
    message_id: str
    message: bytes


def claim(connection: sa.Connection, table: sa.Table, limit: int) -> list[Row]:
    """Lock and return up to ``limit`` rows, lowest id first, skipping those another relay holds.

    The locks last until ``connection``'s transaction ends (``FOR UPDATE SKIP
    LOCKED``; SQLite has no row locks and ignores the clause, so one relay at
    a time there).
    """
    query = (
        sa.select(table.c.id, table.c.message_id, table.c.message)
        .order_by(table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Row(row.id, row.message_id, bytes(row.message)) for row in connection.execute(query)]


def delete(connection: sa.Connection, table: sa.Table, ids: Sequence[int]) -> None:
    if ids:
        connection.execute(table.delete().where(table.c.id.in_(ids)))


def move_aside(connection: sa.Connection, table: sa.Table, dead: sa.Table, row_id: int, reason: str) -> None:
    """Move row ``row_id`` of ``table`` to ``dead`` (:func:`dead_table`) with ``reason``, in the open transaction."""
    kept = [table.c.id, table.c.message_id, table.c.queue_name, table.c.message, table.c.created_at]
    marked = sa.select(*kept, sa.func.now(), sa.literal(reason, sa.Text())).where(table.c.id == row_id)
    connection.execute(dead.insert().from_select([*(c.name for c in kept), "failed_at", "reason"], marked))
    delete(connection, table, [row_id])


@dataclasses.dataclass(frozen=True)
class Backlog:
    """Calls committed and not yet published, and how long the oldest has waited (None when there are none)."""

    calls: int
    oldest_age: float | None


def backlog(connection: sa.Connection, table: sa.Table) -> Backlog:
    """The table's backlog, read with the database's own clock (rows claimed by a relay count too)."""
    calls, oldest, now = connection.execute(
        sa.select(sa.func.count(), sa.func.min(table.c.created_at), sa.func.now())
    ).one()
    if oldest is None:
        return Backlog(calls, None)
    if oldest.tzinfo is None:  # SQLite keeps naive UTC times
        oldest, now = oldest.replace(tzinfo=datetime.timezone.utc), now.replace(tzinfo=datetime.timezone.utc)
    return Backlog(calls, max(0.0, (now - oldest).total_seconds()))

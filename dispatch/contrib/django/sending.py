"""``outbox``: calls written with Django's current transaction, on the connection Django already holds.

``outbox.send(URL(u), x=1)`` inside ``transaction.atomic()`` validates the
call as ``URL(u).send(x=1)`` would, writes it as a row of the outbox table
(the app's model, :mod:`.models`) through the ORM on Django's connection,
and on PostgreSQL sends the ``NOTIFY`` that wakes a relay at commit.
Outside ``atomic()`` Django commits each statement at once, so the call is
committed there and then.

The relay (``manage.py dispatch_relay``) is :mod:`dispatch.outbox`'s, on a
SQLAlchemy engine made from the same ``DATABASES`` entry: :meth:`DjangoOutbox.sqlalchemy`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.functions import Now

from ...outbox import Outbox
from ...outbox.message import call_message, seconds_until
from ...outbox.table import Backlog, channel, outbox_table
from ...result import CallResult
from ...url import URL

#: Django's own cursor class and type adapters stay with Django's connections, not the relay's.
_DJANGO_ONLY_PARAMETERS = ("cursor_factory", "context")


class DjangoOutbox:
    """The outbox of the database ``using`` (``DATABASES`` alias): same methods as :class:`~dispatch.outbox.Outbox`,
    without the connection argument.
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using

    def __repr__(self) -> str:
        return f"DjangoOutbox(using={self.using!r})"

    def send(self, url: URL | str, /, **params: Any) -> CallResult:
        """Write a call to ``url`` with ``params`` in the current transaction; its handle, at once."""
        return self._write(call_message(url, params))

    def send_in(self, url: URL | str, seconds: float, /, **params: Any) -> CallResult:
        """:meth:`send`, performed no earlier than ``seconds`` after this call."""
        return self._write(call_message(url, params, seconds))

    def send_at(self, url: URL | str, when: datetime, /, **params: Any) -> CallResult:
        """:meth:`send`, performed no earlier than ``when`` (a timezone-aware datetime)."""
        return self._write(call_message(url, params, seconds_until(when)))

    def sqlalchemy(self) -> Outbox:
        """The same table as an :class:`~dispatch.outbox.Outbox` on an engine of its own (for the relay)."""
        from .models import OutboxCall

        return Outbox(_engine(self.using), table=OutboxCall._meta.db_table)

    def backlog(self) -> Backlog:
        """Calls committed and not yet published, and the age in seconds of the oldest."""
        outbox = self.sqlalchemy()
        try:
            return outbox.backlog()
        finally:
            outbox.engine.dispose()

    def _write(self, message: CallResult) -> CallResult:
        from .models import OutboxCall

        OutboxCall.objects.using(self.using).create(
            message_id=message.message_id, queue_name=message.queue_name, message=message.encode(), created_at=Now()
        )
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [channel(outbox_table(OutboxCall._meta.db_table))])
        return message


def _engine(using: str) -> sa.Engine:
    """A SQLAlchemy engine on the database Django reaches as ``using``, with Django's own connection parameters."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        import psycopg

        parameters = {
            name: value
            for name, value in connection.get_connection_params().items()
            if name not in _DJANGO_ONLY_PARAMETERS
        }
        connect = functools.partial(psycopg.connect, **parameters)
        return sa.create_engine("postgresql+psycopg://", creator=connect, pool_pre_ping=True)
    if connection.vendor == "sqlite":
        return sa.create_engine(f"sqlite:///{connection.settings_dict['NAME']}")
    raise ImproperlyConfigured(f"the dispatch outbox relay supports PostgreSQL and SQLite, not {connection.vendor}")

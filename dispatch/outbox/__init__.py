"""Calls sent with your database transaction: the transactional outbox (extra ``outbox``).

::

    from dispatch import URL
    from dispatch.outbox import Outbox

    outbox = Outbox("postgresql+psycopg://app@db/app")
    outbox.create_table()
    with outbox.engine.begin() as conn:
        conn.execute(...)                          # the application's own writes
        res = outbox.send(conn, URL(u), x=1)       # published only if this commits

A call becomes a row of the outbox table in the caller's transaction
(:mod:`~dispatch.outbox.sending`, :mod:`~dispatch.outbox.table`); a relay
(``dispatch relay``, :mod:`~dispatch.outbox.relay`) publishes committed rows
with publisher confirms and deletes them once confirmed.  The Django app
``dispatch.contrib.django`` writes the same table.  docs/outbox.md has the
guarantees.
"""

from __future__ import annotations

from .relay import Relay, run_relay
from .sending import Outbox
from .table import Backlog

__all__ = ["Backlog", "Outbox", "Relay", "run_relay"]

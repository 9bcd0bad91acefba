"""The outbox on SQLite, with no services: what a row holds, what validation refuses, a relay pass end to end.

The relay pass runs against dispatch's in-process stub broker and a real
HTTP server (the ``dispatch_stub`` and ``server`` fixtures); PostgreSQL,
LISTEN/NOTIFY and several relays are tested in tests/integration/test_outbox.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dramatiq
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dispatch import URL, HttpDispatch
from dispatch.errors import BrokerUnavailable, ConfigurationError, PublishBlocked
from dispatch.outbox import Outbox, Relay
from dispatch.settings import Settings


@pytest.fixture
def outbox(tmp_path) -> Iterator[Outbox]:
    box = Outbox(f"sqlite:///{tmp_path / 'app.db'}")
    box.create_table()
    yield box
    box.engine.dispose()


def stored(outbox: Outbox) -> list[dramatiq.Message]:
    with outbox.engine.connect() as conn:
        return [dramatiq.Message.decode(m) for m in conn.execute(sa.select(outbox.table.c.message)).scalars()]


def test_a_committed_call_is_a_row_holding_the_message_send_would_publish(outbox):
    url = URL("http://example.com/multiply", "POST", headers={"X-Tenant": "acme"}, body="json")
    with outbox.engine.begin() as conn:
        res = outbox.send(conn, url, x=2, y=3)
    [message] = stored(outbox)
    assert message.message_id == res.message_id
    assert message.args == ("http://example.com/multiply", "POST", {"x": 2, "y": 3}, url.options)
    assert message.actor_name == "http_dispatch" and message.queue_name == res.queue_name
    assert outbox.backlog().calls == 1


def test_a_rolled_back_call_leaves_nothing(outbox):
    with outbox.engine.connect() as conn, conn.begin() as transaction:
        outbox.send(conn, "http://example.com/multiply", x=1)
        transaction.rollback()
    assert stored(outbox) == []
    assert outbox.backlog().calls == 0 and outbox.backlog().oldest_age is None


@pytest.mark.parametrize(
    "send",
    [
        lambda box, conn: box.send(conn, "ftp://example.com/x"),
        lambda box, conn: box.send(conn, URL("http://example.com/x"), blob=b"bytes"),
        lambda box, conn: box.send(conn, URL("http://example.com/x"), n=float("nan")),
        lambda box, conn: box.send_in(conn, "http://example.com/x", -1),
        lambda box, conn: box.send_in(conn, "http://example.com/x", True),
        lambda box, conn: box.send_at(conn, "http://example.com/x", datetime(2030, 1, 1)),
    ],
    ids=["scheme", "bytes", "nan", "negative-delay", "bool-delay", "naive-datetime"],
)
def test_bad_input_raises_in_the_caller_and_writes_nothing(outbox, send):
    with outbox.engine.begin() as conn, pytest.raises(ValueError):
        send(outbox, conn)
    assert stored(outbox) == []


def test_a_call_for_later_carries_its_eta_from_the_send(outbox):
    when = datetime.now(timezone.utc) + timedelta(hours=1)
    with Session(outbox.engine) as session, session.begin():
        soon = outbox.send_in(session, URL("http://example.com/x"), 30, x=1)
        later = outbox.send_at(session, URL("http://example.com/x"), when)
    by_id = {message.message_id: message for message in stored(outbox)}
    assert soon.queue_name == by_id[soon.message_id].queue_name and soon.queue_name.endswith(".DQ")
    assert abs(by_id[soon.message_id].options["eta"] - (time.time() + 30) * 1000) < 2000
    assert abs(by_id[later.message_id].options["eta"] - when.timestamp() * 1000) < 2000


def test_a_url_keeps_its_own_dispatcher_and_queue(outbox):
    class OutboxBilling(HttpDispatch):
        queue_name = "billing-outbox"

    with outbox.engine.begin() as conn:
        res = outbox.send(conn, URL("http://example.com/x", dispatcher=OutboxBilling()), x=1)
    [message] = stored(outbox)
    assert message.queue_name == res.queue_name == "billing-outbox" and message.actor_name == "OutboxBilling"


def test_create_table_is_idempotent_and_takes_a_schema_qualified_name(tmp_path):
    box = Outbox(sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}"), table="main.calls_out")
    box.create_table()
    box.create_table()
    assert box.table.schema == "main" and box.table.name == "calls_out"
    assert sa.inspect(box.engine).has_table("calls_out")


def test_a_plain_postgresql_url_gets_psycopg_3():
    assert Outbox("postgresql://app@db/app").engine.url.drivername == "postgresql+psycopg"


def test_send_refuses_what_is_not_a_connection(outbox):
    with pytest.raises(TypeError, match="Connection or Session"):
        outbox.send(object(), "http://example.com/x")


def test_a_relay_pass_publishes_committed_calls_and_deletes_them(outbox, dispatch_stub, server):
    with outbox.engine.begin() as conn:
        first = outbox.send(conn, URL(server.base + "/first"), n=1)
        second = outbox.send(conn, URL(server.base + "/second"), n=2)
    assert Relay(outbox).run_once() == 2
    assert first.get(timeout=10)["target"] == "/first?n=1"
    assert second.get(timeout=10)["headers"]["idempotency-key"] == second.message_id
    assert stored(outbox) == [] and Relay(outbox).run_once() == 0


def test_a_relay_pass_goes_batch_by_batch_in_id_order(outbox, dispatch_stub, server):
    with outbox.engine.begin() as conn:
        handles = [outbox.send(conn, server.base, i=i) for i in range(7)]
    assert Relay(outbox, batch_size=3).run_once() == 7
    assert [call.message_id for call in dispatch_stub.sent] == [res.message_id for res in handles]


def test_a_call_for_later_is_recorded_scheduled_by_the_relay(outbox, dispatch_stub, server):
    with outbox.engine.begin() as conn:
        res = outbox.send_in(conn, server.base, 3600)
    assert res.state() == "pending"  # written, not yet relayed
    Relay(outbox).run_once()
    assert res.state() == "scheduled"
    assert res.cancel() is True


def test_the_outbox_url_setting_must_be_a_database_url():
    assert Settings.from_env({"DISPATCH_OUTBOX_URL": "sqlite:///x.db"}).outbox_url == "sqlite:///x.db"
    with pytest.raises(ConfigurationError, match="DISPATCH_OUTBOX_URL"):
        Settings.from_env({"DISPATCH_OUTBOX_URL": "outbox.db"})


def write_row(outbox: Outbox, message_id: str, message: bytes) -> None:
    with outbox.engine.begin() as conn:
        conn.execute(outbox.table.insert().values(message_id=message_id, queue_name="q", message=message,
                                                  created_at=sa.func.now()))  # fmt: skip


def test_a_row_that_is_not_a_message_is_moved_aside_once_and_the_calls_after_it_go_on(
    outbox, dispatch_stub, server, caplog
):
    write_row(outbox, "garbage-1", b"\xff not json")
    write_row(outbox, "garbage-2", b'{"no": "fields"}')
    with outbox.engine.begin() as conn:
        res = outbox.send(conn, server.base, n=1)
    assert Relay(outbox, batch_size=2).run_once() == 1  # the first batch holds only the two bad rows
    assert res.get(timeout=10)["target"] == "/?n=1"
    assert stored(outbox) == [] and outbox.backlog().calls == 0
    with outbox.engine.connect() as conn:
        dead = conn.execute(sa.select(outbox.dead_table).order_by(outbox.dead_table.c.id)).all()
    assert [(row.message_id, row.message) for row in dead] == [("garbage-1", b"\xff not json"),
                                                               ("garbage-2", b'{"no": "fields"}')]  # fmt: skip
    assert [row.reason for row in dead] == ["DecodeError: failed to decode data b'\\xff not json'", "KeyError: 'args'"]
    assert all(row.failed_at is not None for row in dead)
    moved = [r for r in caplog.records if "is not a message, moved to dispatch_outbox_dead" in r.getMessage()]
    assert len(moved) == 2
    assert Relay(outbox).run_once() == 0


def test_without_the_dead_table_a_bad_row_stays_logged_once_and_the_others_go_on(outbox, dispatch_stub, server, caplog):
    outbox.dead_table.drop(outbox.engine)  # a table made before <table>_dead existed
    write_row(outbox, "garbage", b"\xff")
    with outbox.engine.begin() as conn:
        res = outbox.send(conn, server.base, n=2)
    relay = Relay(outbox)
    assert relay.run_once() == 1 and relay.run_once() == 0
    assert res.get(timeout=10)["target"] == "/?n=2"
    with outbox.engine.connect() as conn:
        assert conn.execute(sa.select(outbox.table.c.message_id)).scalars().all() == ["garbage"]
    stuck = [r.getMessage() for r in caplog.records if "cannot be moved to dispatch_outbox_dead" in r.getMessage()]
    assert len(stuck) == 1 and "dispatch outbox init" in stuck[0]


@pytest.mark.parametrize("error", [PublishBlocked, BrokerUnavailable])
def test_a_publish_stopped_half_way_deletes_the_rows_rabbitmq_confirmed_then_raises(
    outbox, dispatch_stub, monkeypatch, error
):
    with outbox.engine.begin() as conn:
        handles = [outbox.send(conn, "http://example.com/x", i=i) for i in range(4)]
    unconfirmed = [handles[2].message_id, handles[3].message_id]

    def half_way(broker: object, messages: list[dramatiq.Message], patience: float) -> None:
        raise error("RabbitMQ blocks publishers", unconfirmed)

    monkeypatch.setattr("dispatch.outbox.relay.publish_many", half_way)
    with pytest.raises(error):
        Relay(outbox).run_once()
    assert [message.message_id for message in stored(outbox)] == unconfirmed  # the confirmed two are not sent again


def test_a_publish_stopped_without_saying_what_it_confirmed_keeps_every_row(outbox, dispatch_stub, monkeypatch):
    with outbox.engine.begin() as conn:
        handles = [outbox.send(conn, "http://example.com/x", i=i) for i in range(2)]

    def unreachable(broker: object, messages: list[dramatiq.Message], patience: float) -> None:
        raise BrokerUnavailable("RabbitMQ unreachable")

    monkeypatch.setattr("dispatch.outbox.relay.publish_many", unreachable)
    with pytest.raises(BrokerUnavailable):
        Relay(outbox).run_once()
    assert [message.message_id for message in stored(outbox)] == [res.message_id for res in handles]

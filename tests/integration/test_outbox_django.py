"""The Django app in a real Django project (tests/integration/django_project) on the real PostgreSQL.

``migrate`` creates the outbox table (the same layout ``Outbox.create_table()``
makes); ``outbox.send`` inside ``transaction.atomic()`` is committed or rolled
back with the order it belongs to; ``manage.py dispatch_relay --once``
publishes what was committed, and a running ``dispatch_relay`` is woken by
the commit's NOTIFY.  The project lives in a PostgreSQL schema of its own,
dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dispatch import CallResult
from dispatch.outbox import Outbox

from .outbox_relay import POSTGRES_URL
from .support import wait_for

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent / "django_project"


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"outbox_django_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
    engine.dispose()


def manage(schema: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=_env(schema), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _env(schema: str) -> dict[str, str]:
    return {**os.environ, "OUTBOX_TEST_SCHEMA": schema, "DJANGO_SETTINGS_MODULE": "settings"}


def place(schema: str, endpoint: str, total: int, key: str, fail: bool = False) -> str:
    """Run the project's ``shop.orders.place`` in a Django shell; the call's message id (nothing when it failed)."""
    code = (
        "from shop.orders import place\n"
        "try:\n"
        f"    print(place({endpoint!r}, {total}, {key!r}, fail={fail}))\n"
        "except RuntimeError as error:\n"
        "    print('rolled back:', error)\n"
    )
    return manage(schema, "shell", "-c", code).stdout.strip().splitlines()[-1]  # Django 5.2 notes its imports first


def columns(engine: sa.Engine, table: str, schema: str) -> list[tuple[str, str, bool]]:
    inspector = sa.inspect(engine)
    return [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table, schema=schema)]


@pytest.mark.timeout(180)
def test_a_django_project_sends_with_its_transaction_and_relays_with_manage_py(worker, python_endpoint, schema):
    manage(schema, "migrate")
    outbox = Outbox(POSTGRES_URL, table=f"{schema}.dispatch_outbox")
    reference = Outbox(POSTGRES_URL, table=f"{schema}.reference_outbox")
    reference.create_table()
    assert columns(outbox.engine, "dispatch_outbox", schema) == columns(outbox.engine, "reference_outbox", schema)
    dead = columns(outbox.engine, "dispatch_outbox_dead", schema)
    assert dead == columns(outbox.engine, "reference_outbox_dead", schema)  # where undecodable rows go

    endpoint, kept_key, rolled_back_key = python_endpoint.url(""), uuid.uuid4().hex, uuid.uuid4().hex
    message_id = place(schema, endpoint, 21, kept_key)
    assert place(schema, endpoint, 5, rolled_back_key, fail=True) == "rolled back: the order could not be saved"
    with outbox.engine.connect() as conn:
        assert conn.execute(sa.select(outbox.table.c.message_id)).scalars().all() == [message_id]
        assert conn.execute(sa.text(f"SELECT total FROM {schema}.shop_order")).scalars().all() == [21]

    assert manage(schema, "dispatch_relay", "--once").stdout.strip() == "relayed 1 call(s)"
    assert CallResult.from_id(message_id).get(timeout=10) == 42
    assert outbox.backlog().calls == 0

    command = [sys.executable, "manage.py", "dispatch_relay"]
    relay = subprocess.Popen(command, cwd=PROJECT, env=_env(schema), stderr=subprocess.PIPE, text=True)
    try:
        assert "relaying" in relay.stderr.readline()  # listening: the next commit's NOTIFY wakes it
        second = place(schema, endpoint, 50, uuid.uuid4().hex)
        committed = time.monotonic()
        wait_for(lambda: outbox.backlog().calls == 0, 5, "the running relay to publish", interval=0.005)
        print(f"\nDjango commit -> published by dispatch_relay: {(time.monotonic() - committed) * 1000:.0f} ms")
        assert CallResult.from_id(second).get(timeout=10) == 100
    finally:
        relay.terminate()
        relay.wait(15)
    assert python_endpoint.hits(rolled_back_key) == 0 and python_endpoint.hits(kept_key) == 1
    outbox.engine.dispose()
    reference.engine.dispose()

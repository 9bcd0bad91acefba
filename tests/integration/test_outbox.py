"""The outbox against the real PostgreSQL, RabbitMQ, Redis, a real worker and a real endpoint.

Each test has an outbox table of its own, dropped afterwards.  Relays run as
processes of their own (outbox_relay.py), so a test can kill one with
SIGKILL at the moment it wants: after the claim and before the publish, or
after RabbitMQ confirmed the publish and before the rows were deleted.
The last test restarts the machine's PostgreSQL cluster (``pg_ctlcluster``;
started again in a ``finally`` even if the test fails): only these tests
use PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from dispatch import URL
from dispatch.outbox import Outbox

from .outbox_relay import POSTGRES_URL, RelayProcess
from .support import dispatch, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    box = Outbox(POSTGRES_URL, table=f"dispatch_outbox_{uuid.uuid4().hex[:8]}")
    box.create_table()
    yield box
    box.table.drop(box.engine, checkfirst=True)
    box.dead_table.drop(box.engine, checkfirst=True)
    box.engine.dispose()


@pytest.fixture
def start_relay(outbox: Outbox, tmp_path) -> Iterator[Callable[..., RelayProcess]]:
    """``start_relay(pause=None)``: a relay process on the test's table, ready (listening); stopped after."""
    started: list[RelayProcess] = []

    def start(pause: str | None = None) -> RelayProcess:
        relay = RelayProcess(tmp_path / f"relay-{len(started)}.log", POSTGRES_URL, outbox.table.name, pause)
        started.append(relay)
        relay.wait_for("relaying")
        return relay

    yield start
    for relay in started:
        relay.stop()


def rows(outbox: Outbox) -> list[str]:
    with outbox.engine.connect() as conn:
        return list(conn.execute(sa.select(outbox.table.c.message_id).order_by(outbox.table.c.id)).scalars())


def test_a_rolled_back_call_is_never_sent_and_a_committed_one_is_published_within_a_second(
    worker, python_endpoint, outbox, start_relay
):
    start_relay()
    key = uuid.uuid4().hex
    with outbox.engine.connect() as conn, conn.begin() as transaction:
        rolled_back = outbox.send(conn, URL(python_endpoint.url("/multiply")), x=1, y=1, key=key)
        transaction.rollback()

    published, performed = [], []
    for i in range(20):
        with outbox.engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))  # the application's own writes would go here
            res = outbox.send(conn, URL(python_endpoint.url("/multiply")), x=i, y=3)
        committed = time.monotonic()
        wait_for(lambda: not rows(outbox), 5, "the relay to publish the call", interval=0.002)
        published.append(time.monotonic() - committed)
        assert res.get(timeout=10) == 3 * i
        performed.append(time.monotonic() - committed)

    print(
        f"\noutbox commit -> published (confirmed, row deleted): median {statistics.median(published) * 1000:.1f} ms, "
        f"max {max(published) * 1000:.1f} ms; commit -> outcome read back: "
        f"median {statistics.median(performed) * 1000:.1f} ms, max {max(performed) * 1000:.1f} ms (20 calls)"
    )
    assert max(published) < 1.0
    assert python_endpoint.hits(key) == 0
    assert rolled_back.state() == "pending"  # nobody knows it: it never existed


def test_a_call_for_later_waits_from_its_send_and_can_be_cancelled_before_and_after_the_relay(
    worker, python_endpoint, outbox, start_relay
):
    url = URL(python_endpoint.url("/multiply"))
    kept_key, cancelled_key, early_key = (uuid.uuid4().hex for _ in range(3))
    sent = time.monotonic()
    with outbox.engine.begin() as conn:  # 10 s: well after the slow commit and the relay's start, however slow here
        kept = outbox.send_in(conn, url, 10, x=2, y=5, key=kept_key)
        cancelled = outbox.send_in(conn, url, 10, x=1, y=1, key=cancelled_key)
        cancelled_early = outbox.send_in(conn, url, 10, x=1, y=1, key=early_key)
        time.sleep(1)  # a slow transaction: the delay still counts from the send
    assert cancelled_early.cancel() is True  # before any relay published it
    start_relay()
    wait_for(lambda: not rows(outbox), 5, "the relay to publish the calls")
    assert kept.state() == "scheduled"
    assert cancelled.cancel() is True
    assert kept.get(timeout=25) == 10
    assert 10.0 <= time.monotonic() - sent < 13.0  # from the send, not from the commit or the relay's publish
    time.sleep(0.5)
    assert python_endpoint.hits(cancelled_key) == python_endpoint.hits(early_key) == 0


@pytest.mark.parametrize("moment", ["before-publish", "after-publish"])
def test_a_relay_killed_at_any_moment_loses_nothing_and_republishes_with_the_same_id(
    worker, python_endpoint, outbox, start_relay, moment
):
    key = uuid.uuid4().hex
    with outbox.engine.begin() as conn:
        res = outbox.send(conn, URL(python_endpoint.url("/multiply")), x=6, y=7, key=key)
    doomed = start_relay(pause=moment)
    doomed.wait_for(f"paused {moment}")
    if moment == "after-publish":  # RabbitMQ has it: the worker performs it while the relay hangs
        wait_for(lambda: python_endpoint.hits(key) == 1, 10, "the first copy to be performed")
    doomed.kill()
    assert rows(outbox) == [res.message_id]  # the claim died with its connection, the row did not

    start_relay()
    assert res.get(timeout=10) == 42
    wait_for(lambda: rows(outbox) == [], 10, "the row to be relayed")
    time.sleep(0.5)  # after-publish: the second copy, republished, finds the outcome stored and is acked unsent
    assert python_endpoint.hits(key) == 1
    ids = python_endpoint.url(f"/call_ids/{key}")
    assert URL(ids).send().get(timeout=10) == [res.message_id]  # the same Idempotency-Key


def test_a_row_that_is_not_a_message_is_moved_aside_and_holds_nothing_up(worker, python_endpoint, outbox, start_relay):
    with outbox.engine.begin() as conn:
        conn.execute(outbox.table.insert().values(message_id="not-a-call", queue_name="q", message=b"\xff",
                                                  created_at=sa.func.now()))  # fmt: skip
        res = outbox.send(conn, URL(python_endpoint.url("/multiply")), x=3, y=3)
    relay = start_relay()
    assert res.get(timeout=10) == 9
    wait_for(lambda: not rows(outbox), 5, "the outbox to empty")
    with outbox.engine.connect() as conn:
        assert conn.execute(sa.select(outbox.dead_table.c.message_id)).scalars().all() == ["not-a-call"]
    assert relay.log().count("is not a message, moved to") == 1


@pytest.mark.timeout(180)
def test_two_relays_share_the_calls_and_perform_each_once(worker, python_endpoint, outbox, start_relay):
    start_relay(), start_relay()
    url = URL(python_endpoint.url("/multiply"))
    keys = [uuid.uuid4().hex for _ in range(200)]
    started = time.monotonic()
    handles = []
    for first in range(0, 200, 10):
        with outbox.engine.begin() as conn:
            handles += [outbox.send(conn, url, x=i, y=2, key=keys[i]) for i in range(first, first + 10)]
    assert [res.get(timeout=60) for res in handles] == [2 * i for i in range(200)]
    print(f"\n200 calls in 20 transactions, two relays: performed {time.monotonic() - started:.2f}s after the first")
    assert rows(outbox) == []
    assert [python_endpoint.hits(key) for key in keys] == [1] * 200


def test_the_cli_creates_the_table_and_relays_once(worker, python_endpoint):
    table = f"dispatch_outbox_{uuid.uuid4().hex[:8]}"
    env = {"DISPATCH_OUTBOX_URL": POSTGRES_URL}
    outbox = Outbox(POSTGRES_URL, table=table)
    try:
        assert dispatch("outbox", "init", "--table", table, env=env).returncode == 0
        assert dispatch("outbox", "init", "--table", table, env=env).returncode == 0  # again: nothing to do
        with outbox.engine.begin() as conn:
            res = outbox.send(conn, URL(python_endpoint.url("/multiply")), x=4, y=5)
        backlog = dispatch("outbox", "backlog", "--table", table, "--json", env=env)
        assert json.loads(backlog.stdout)["calls"] == 1, backlog.stderr
        done = dispatch("relay", "--once", "--table", table, "--json", env=env)
        assert json.loads(done.stdout) == {"relayed": 1}, done.stderr
        assert res.get(timeout=10) == 20
    finally:
        outbox.table.drop(outbox.engine, checkfirst=True)
        outbox.dead_table.drop(outbox.engine, checkfirst=True)
        outbox.engine.dispose()
    missing = dispatch("relay", "--once", env={"DISPATCH_OUTBOX_URL": ""})
    assert missing.returncode == 2 and "DISPATCH_OUTBOX_URL" in missing.stderr


def test_backlog_counts_committed_calls_and_the_age_of_the_oldest(python_endpoint, outbox):
    assert outbox.backlog().calls == 0 and outbox.backlog().oldest_age is None
    with outbox.engine.begin() as conn:
        outbox.send(conn, python_endpoint.url("/multiply"), x=1, y=1)
    time.sleep(0.3)
    backlog = outbox.backlog()
    assert backlog.calls == 1 and 0.3 <= backlog.oldest_age < 5


def _cluster() -> list[str]:
    """``VERSION NAME`` of the cluster on port 5432, from ``pg_lsclusters``."""
    if not shutil.which("pg_lsclusters"):
        pytest.skip("no pg_lsclusters: PostgreSQL is not a Debian cluster here")
    for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.splitlines():
        version, name, port = line.split()[:3]
        if port == "5432":
            return [version, name]
    pytest.skip("no PostgreSQL cluster on port 5432")


def pg_ctlcluster(action: str, cluster: list[str]) -> None:
    command = ["pg_ctlcluster", *cluster, action, "-m", "fast"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(180)
def test_the_relay_carries_on_after_the_database_restarts(worker, python_endpoint, outbox, start_relay):
    cluster = _cluster()
    relay: RelayProcess = start_relay()
    url = URL(python_endpoint.url("/multiply"))
    with outbox.engine.begin() as conn:
        before = outbox.send(conn, url, x=2, y=2)
    assert before.get(timeout=10) == 4

    try:
        pg_ctlcluster("stop", cluster)
        time.sleep(2)  # the relay's passes fail meanwhile, and its LISTEN connection is gone
        pg_ctlcluster("start", cluster)
    finally:
        subprocess.run(["pg_ctlcluster", *cluster, "start"], capture_output=True, timeout=120)  # a no-op when up

    keys = [uuid.uuid4().hex for _ in range(5)]
    committed = time.monotonic()
    with outbox.engine.begin() as conn:  # pool_pre_ping: the test's own stale connections are replaced
        after = [outbox.send(conn, url, x=i, y=3, key=key) for i, key in enumerate(keys)]
    assert [res.get(timeout=30) for res in after] == [0, 3, 6, 9, 12], relay.log()
    print(f"\nafter the database restart: commit -> outcome in {time.monotonic() - committed:.2f}s")
    wait_for(lambda: not rows(outbox), 10, "the outbox to empty")
    assert [python_endpoint.hits(key) for key in keys] == [1] * 5
    assert "relay pass failed" in relay.log() or "LISTEN connection" in relay.log()

    time.sleep(1.5)  # the LISTEN connection is back: a commit now is published in well under the poll interval
    with outbox.engine.begin() as conn:
        quick = outbox.send(conn, url, x=7, y=7)
    committed = time.monotonic()
    wait_for(lambda: not rows(outbox), 5, "the relay to publish", interval=0.002)
    assert time.monotonic() - committed < 0.5, relay.log()
    assert quick.get(timeout=10) == 49

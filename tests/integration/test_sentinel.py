"""Redis you can lose: the Sentinel-watched master is killed with ``kill -9`` while calls flow and callers wait.

``scripts/redis-sentinel.sh`` starts a master, two replicas and three sentinels beside the
machine's own Redis (ports 6391-6393, 26392-26394).  A real worker and this process (the
client) take ``DISPATCH_RESULTS_URL=redis+sentinel://...``; about 100 calls a second are sent,
callers wait in ``get()`` and ``aget()``, and the master dies.  Every outcome must arrive, no
call may be performed twice except as the at-least-once rule allows (again with the same
Idempotency-Key), a cancel answered before the kill must hold after it, and the outage is
measured and printed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dispatch import URL, CallCancelled
from dispatch.runtime import build_runtime, set_runtime
from dispatch.settings import Settings

from .support import REDIS_DB, ROOT, unique_key, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("redis-sentinel") and not shutil.which("redis-server"), reason="no Redis"),
]

SCRIPT = str(ROOT / "scripts" / "redis-sentinel.sh")
CALLS, RATE = 600, 100  # calls sent, per second: about 6 s of traffic
KILL_AFTER = 200  # calls sent before the master dies


def topology(*args: str) -> str:
    done = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def sentinel_url() -> Iterator[str]:
    """A master, two replicas and three sentinels of the test's own; killed and deleted afterwards."""
    try:
        topology("start")
        yield topology("url", str(REDIS_DB))
    finally:
        topology("stop")


@pytest.fixture
def sentinel_client(sentinel_url: str, make_worker) -> Iterator[str]:
    """A worker on the Sentinel URL, and this process's runtime on the same URL and queue; the queue's name."""
    worker = make_worker(ready=False, threads=16, DISPATCH_RESULTS_URL=sentinel_url)
    settings = Settings.from_env({**os.environ, "DISPATCH_RESULTS_URL": sentinel_url, "DISPATCH_QUEUE": worker.queue})
    previous = set_runtime(build_runtime(settings))
    try:
        yield worker.queue
    finally:
        set_runtime(previous)


def _replicated_writes(stop: threading.Event, times: list[tuple[float, bool]]) -> None:
    """Write (and WAIT for a replica) every 20 ms, recording when each write counted or failed."""
    from dispatch.runtime import get_runtime

    states = get_runtime().call_states
    while not stop.is_set():
        try:
            states.schedule(f"probe-{unique_key()}", 1000)
            times.append((time.monotonic(), True))
        except Exception:
            times.append((time.monotonic(), False))
        time.sleep(0.02)


def test_killing_the_master_under_load_loses_nothing(sentinel_client: str, python_endpoint) -> None:
    assert URL(python_endpoint.url("/health")).send().get(timeout=60) == "ok"
    key = unique_key()
    cancelled_key = unique_key()
    later = URL(python_endpoint.url("/multiply")).send_in(6, x=1, y=1, key=cancelled_key)
    assert later.cancel() is True  # answered before the kill: it must hold after it

    slow = URL(python_endpoint.url("/slow")).send(ms=3000)
    slow_outcome: list[object] = []
    awaiting = threading.Thread(target=lambda: slow_outcome.append(asyncio.run(slow.aget(timeout=60))))
    awaiting.start()

    stop, writes = threading.Event(), []
    probe = threading.Thread(target=_replicated_writes, args=(stop, writes))
    probe.start()
    waiters = ThreadPoolExecutor(max_workers=48)
    handles, outcomes = [], []
    master_before = topology("master")
    killed_at = 0.0
    started = time.monotonic()
    try:
        for i in range(CALLS):
            time.sleep(max(0.0, started + i / RATE - time.monotonic()))  # ~100 calls/s
            handle = URL(python_endpoint.url("/multiply")).send(x=i, y=1, key=f"{key}-{i}")
            handles.append(handle)
            outcomes.append(waiters.submit(handle.get, 90))
            if i == KILL_AFTER:
                os.kill(int(topology("pid", master_before.rpartition(":")[2])), 9)
                killed_at = time.monotonic()
        wait_for(lambda: topology("master") != master_before, 30, "the sentinels to promote a replica")
        assert [outcome.result(timeout=120) for outcome in outcomes] == list(range(CALLS))  # lost: none
    finally:
        stop.set()
        probe.join()
        waiters.shutdown(wait=False, cancel_futures=True)
    awaiting.join(60)
    assert slow_outcome == ["slow"]  # an aget() waiting across the failover carried on

    ids = {h.message_id for h in handles}
    performed = {
        i: requests.get(python_endpoint.url(f"/call_ids/{key}-{i}"), timeout=5).json()["retval"] for i in range(CALLS)
    }
    twice = {i: sent for i, sent in performed.items() if len(sent) > 1}
    assert all(len(sent) >= 1 for sent in performed.values())
    # at-least-once: a call performed again carries its own id again (a receiver dedupes on it), and only
    # a call a worker had in hand when the master died may be.
    assert all(set(sent) == {handles[i].message_id} and sent[0] in ids for i, sent in twice.items()), twice
    assert len(twice) <= 16, twice

    time.sleep(max(0.0, 8 - (time.monotonic() - started)))  # past the cancelled call's due time
    assert later.state() == "cancelled"
    with pytest.raises(CallCancelled):
        later.get(timeout=10)
    assert python_endpoint.hits(cancelled_key) == 0

    last_before = max(t for t, ok in writes if ok and t < killed_at)
    first_after = min(t for t, ok in writes if ok and t > killed_at)
    print(
        f"\nRedis master killed with kill -9: replicated writes (WAIT 1) stopped for {first_after - last_before:.1f} s "
        f"(the outage); {len(twice)} of {CALLS} calls performed twice"
    )

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
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import redis.exceptions
import requests

from dispatch import URL, CallCancelled
from dispatch.actor import HttpDispatch
from dispatch.call import ACTOR_NAME
from dispatch.runtime import build_runtime, set_runtime
from dispatch.settings import Settings

from .support import REDIS_DB, ROOT, dispatch, free_port, unique_key, wait_for

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


@contextlib.contextmanager
def client_of(results_url: str, queue: str) -> Iterator[HttpDispatch]:
    """This process reads outcomes from ``results_url`` for a while; the actor that sends to ``queue``."""
    settings = Settings.from_env({**os.environ, "DISPATCH_RESULTS_URL": results_url, "DISPATCH_QUEUE": queue})
    previous = set_runtime(build_runtime(settings))
    try:
        yield HttpDispatch(actor_name=ACTOR_NAME, queue_name=queue)
    finally:
        set_runtime(previous)


@contextlib.contextmanager
def throwaway_redis(*options: str) -> Iterator[str]:
    """A redis-server of the test's own on a free port, with ``options``; its URL (db 0)."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *options],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: redis.Redis(port=port).ping(), 10, "the throwaway redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait(10)


@pytest.fixture
def sentinel_client(sentinel_url: str, make_worker) -> Iterator[HttpDispatch]:
    """A worker on the Sentinel URL, and this process's runtime on the same URL; the actor sending to the worker."""
    worker = make_worker(ready=False, threads=16, DISPATCH_RESULTS_URL=sentinel_url)
    with client_of(sentinel_url, worker.queue) as dispatcher:
        yield dispatcher


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


def test_killing_the_master_under_load_loses_nothing(sentinel_client: HttpDispatch, python_endpoint) -> None:
    def endpoint(path: str) -> URL:
        return URL(python_endpoint.url(path), dispatcher=sentinel_client)

    assert endpoint("/health").send().get(timeout=60) == "ok"
    key = unique_key()
    cancelled_key = unique_key()
    later = endpoint("/multiply").send_in(6, x=1, y=1, key=cancelled_key)
    assert later.cancel() is True  # answered before the kill: it must hold after it

    slow = endpoint("/slow").send(ms=3000)
    slow_outcome: list[object] = []
    awaiting = threading.Thread(target=lambda: slow_outcome.append(asyncio.run(slow.aget(timeout=60))))
    awaiting.start()

    stop, writes = threading.Event(), list[tuple[float, bool]]()
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
            handle = endpoint("/multiply").send(x=i, y=1, key=f"{key}-{i}")
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


# -- a Redis that may evict, a Redis out of memory --------------------------------------------------


def test_a_redis_that_may_evict_is_named_by_workers_and_status(make_worker) -> None:
    with throwaway_redis("--maxmemory-policy", "allkeys-lru") as url:
        worker = make_worker(ready=False, DISPATCH_RESULTS_URL=url)
        wait_for(lambda: "maxmemory-policy allkeys-lru" in worker.log(), 30, "the worker's warning")
        assert "WARNING" in worker.log() and "noeviction" in worker.log()
        status = dispatch("status", env={"DISPATCH_RESULTS_URL": url, "DISPATCH_QUEUE": worker.queue})
        assert status.returncode == 0, status.stderr
        assert "maxmemory-policy allkeys-lru" in status.stderr

        redis.Redis.from_url(url).config_set("maxmemory-policy", "noeviction")
        status = dispatch("status", env={"DISPATCH_RESULTS_URL": url, "DISPATCH_QUEUE": worker.queue})
        assert status.returncode == 0 and "maxmemory-policy" not in status.stderr, status.stderr


def test_a_write_refused_for_memory_is_a_failed_write_not_a_lost_outcome(make_worker, python_endpoint) -> None:
    with throwaway_redis("--maxmemory", "2mb", "--maxmemory-policy", "noeviction") as url:
        store = redis.Redis.from_url(url)
        with contextlib.suppress(redis.exceptions.OutOfMemoryError):
            for i in range(1000):
                store.set(f"ballast:{i}", b"x" * 10_000)
        worker = make_worker(ready=False, DISPATCH_RESULTS_URL=url, DISPATCH_RESULTS_STORE_PATIENCE="1")
        key = unique_key()
        with client_of(url, worker.queue) as dispatcher:
            handle = URL(python_endpoint.url("/multiply"), dispatcher=dispatcher).send(x=6, y=7, key=key)
            wait_for(lambda: "maxmemory" in worker.log() or handle.state() != "pending", 30, "the worker")
            assert "maxmemory" in worker.log(), worker.log()  # its claim refused for memory
            assert python_endpoint.hits(key) == 0  # the claim was refused: not performed, queued again
            store.config_set("maxmemory", "0")  # memory again
            assert handle.get(timeout=60) == 42
        assert python_endpoint.hits(key) == 1, worker.log()

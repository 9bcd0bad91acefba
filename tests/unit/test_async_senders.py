"""``asend``/``asend_in``/``asend_at``/``acancel``: checked in the caller, published off the event loop."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import dispatch.actor
from dispatch import URL
from dispatch.errors import CallCancelled
from dispatch.testing import stub_worker


async def _ticks_while(awaitable: Any, period: float = 0.01) -> tuple[Any, int]:
    """Await ``awaitable`` while a ticker counts how often the loop let it run."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(period)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable
    finally:
        task.cancel()
    return result, ticks


def test_asend_and_aget_through_the_stub_worker(server):
    async def call() -> Any:
        res = await URL(f"{server.base}/multiply").asend(x=10, y=10)
        return await res.aget(timeout=10)

    with stub_worker():
        seen = asyncio.run(call())
    assert seen["method"] == "GET" and seen["target"] == "/multiply?x=10&y=10"


def test_bad_input_raises_in_the_caller_and_nothing_is_queued():
    url = URL("http://127.0.0.1:9/x")
    with stub_worker() as broker:
        with pytest.raises(ValueError, match="cannot be sent"):
            asyncio.run(url.asend(x=object()))
        with pytest.raises(ValueError, match="send_in"):
            asyncio.run(url.asend_in(-1, x=1))
        with pytest.raises(ValueError, match="timezone-aware"):
            asyncio.run(url.asend_at(datetime(2030, 1, 1), x=1))
        assert all(not queue.qsize() for queue in broker.queues.values())


def test_the_loop_keeps_running_while_the_publish_waits_for_its_confirm(monkeypatch, server):
    real_publish = dispatch.actor.publish

    def slow_publish(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)  # RabbitMQ slow to confirm (a disk write, an alarm, a failover)
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(dispatch.actor, "publish", slow_publish)
    with stub_worker():
        began = time.monotonic()
        res, ticks = asyncio.run(_ticks_while(URL(f"{server.base}/x").asend(a=1)))
        waited = time.monotonic() - began
        assert res.get(timeout=10)["target"] == "/x?a=1"
    assert waited >= 0.5
    assert ticks >= 25  # ~50 at 10 ms: a blocked loop would tick once at most


def test_asend_in_then_acancel():
    async def later_then_cancel() -> tuple[str, bool, bool]:
        res = await URL("http://127.0.0.1:9/never").asend_in(3600)
        state = res.state()
        cancelled = await res.acancel()
        with pytest.raises(CallCancelled):
            await res.aget(timeout=1)
        return state, cancelled, await res.acancel()

    with stub_worker():
        assert asyncio.run(later_then_cancel()) == ("scheduled", True, True)


def test_asend_at_is_asend_in_from_now():
    async def at() -> str:
        res = await URL("http://127.0.0.1:9/never").asend_at(datetime.now(timezone.utc) + timedelta(hours=1))
        state = res.state()
        await res.acancel()
        return state

    with stub_worker():
        assert asyncio.run(at()) == "scheduled"


def test_the_fastapi_example_sends_and_waits_from_its_endpoints(server, monkeypatch):
    fastapi = pytest.importorskip("fastapi")
    monkeypatch.setenv("RECEIVER_URL", server.base)
    path = Path(__file__).resolve().parents[2] / "examples" / "fastapi_sender.py"
    spec = importlib.util.spec_from_file_location("fastapi_sender", path)
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    async def requests() -> None:  # the endpoints as FastAPI awaits them, on one loop
        answer = await example.multiply(x=6, y=7)
        assert answer["result"]["target"] == "/multiply?x=6&y=7"  # the recorder answers what it saw
        later = await example.remind(seconds=3600, x=1, y=1)
        assert await example.cancel(later["id"]) == {"cancelled": True}
        with pytest.raises(fastapi.HTTPException) as refused:
            await example.remind(seconds=-1, x=1, y=1)
        assert refused.value.status_code == 422

    with stub_worker():
        asyncio.run(requests())

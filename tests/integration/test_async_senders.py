"""``await URL(u).asend(...)``, ``asend_in`` and ``await res.acancel()`` against a real worker, RabbitMQ and Redis.

The confirmed publish runs off the event loop: a ticker on the same loop
keeps ticking while the calls are published and performed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatch import URL
from dispatch.errors import CallCancelled

from .support import unique_key

pytestmark = pytest.mark.integration


def test_asend_aget_and_acancel_never_block_the_loop(worker, python_endpoint):
    key = unique_key()

    async def scenario() -> tuple[list[int], bool, float]:
        lag = 0.0

        async def ticker() -> None:
            nonlocal lag
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.01)
                lag = max(lag, time.monotonic() - before - 0.01)

        ticking = asyncio.create_task(ticker())
        url = URL(python_endpoint.url("/multiply"))
        sent = await asyncio.gather(*(url.asend(x=n, y=n) for n in range(1, 21)))
        later = await URL(python_endpoint.url("/multiply")).asend_in(5, x=1, y=1, key=key)
        cancelled = await later.acancel()
        with pytest.raises(CallCancelled):
            await later.aget(timeout=5)
        results = await asyncio.gather(*(res.aget(timeout=30) for res in sent))
        ticking.cancel()
        return results, cancelled, lag

    results, cancelled, lag = asyncio.run(scenario())
    assert results == [n * n for n in range(1, 21)]
    assert cancelled is True
    assert python_endpoint.hits(key) == 0
    assert lag < 0.25, f"the event loop stalled for {lag:.3f}s"

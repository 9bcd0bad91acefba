"""A prototype, not the package: the ``http_dispatch`` actor as an ``async def`` with aiohttp.

    dramatiq async_tasks --processes 1 --threads 512    # PYTHONPATH: the dispatch snapshot + this folder

What an asyncio rewrite of the actor would buy against slow endpoints, measured by
``benchmarks/models.py`` (the ``asyncio`` rows in PROFILE.md): the same broker, middleware
and results store as ``dispatch.tasks`` (so ``URL.map`` sends to it and ``get()`` reads its
outcomes unchanged), the same actor name and queue, but the call is a coroutine on
dramatiq's event-loop thread (``dramatiq.middleware.asyncio.AsyncIO``) with one
``aiohttp.ClientSession`` per process (no connection limit, keep-alive) instead of a
urllib3 request on the worker thread.  Only the callback protocol's happy path is kept
(one attempt, ``parse_answer``): no retries, flow control, signing, redirects or size caps.

dramatiq 2.x runs an async actor by handing the coroutine to the loop thread and *blocking
the worker thread on it* (``dramatiq.asyncio.EventLoopThread.run_coroutine``), so calls in
flight are still capped by ``--threads``: the model changes who does the HTTP work (one
loop instead of T threads), not how many messages a process holds.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import dramatiq
from dramatiq.middleware.asyncio import AsyncIO

from dispatch.call import ACTOR_NAME
from dispatch.protocol import parse_answer
from dispatch.upstream import tune_worker
from dispatch.wiring import get_broker, get_settings

tune_worker()
broker = get_broker()
broker.add_middleware(AsyncIO())
settings = get_settings()
_session: aiohttp.ClientSession | None = None


class AsyncHttpDispatch(dramatiq.Actor):
    #: Read by dispatch's middleware (call log, cancellation claim): these messages are calls.
    performs_calls = True


async def http_dispatch(
    url: str, method: str = "GET", params: dict[str, Any] | None = None, options: dict[str, Any] | None = None
) -> Any:
    global _session
    if _session is None:  # created on the loop thread, on first use
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))
    timeout = aiohttp.ClientTimeout(total=(options or {}).get("timeout", settings.timeout))
    query = {k: str(v) for k, v in (params or {}).items()}
    async with _session.request(method, url, params=query, timeout=timeout) as response:
        body = await response.read()
    response.raise_for_status()
    return parse_answer(body)


dramatiq.actor(
    http_dispatch,
    actor_class=AsyncHttpDispatch,
    actor_name=ACTOR_NAME,
    queue_name=settings.queue,
    broker=broker,
    store_results=True,
    max_retries=0,
)

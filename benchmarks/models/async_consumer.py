#!/usr/bin/env python
"""A prototype, not the package: the ceiling of a fully asynchronous worker for slow endpoints.

    python benchmarks/models/async_consumer.py --processes 1 --prefetch 1024

No dramatiq worker at all: one asyncio loop per process consumes this package's queue with
aio-pika (``--prefetch`` messages unacked at once), performs each call with aiohttp (one
session, no connection limit, keep-alive), stores the outcome where ``CallResult.get()``
reads it (``dispatch:result:<message id>``: DEL, LPUSH the JSON ``retval``, PEXPIRE, in one
pipeline through redis.asyncio) and acks.  Calls in flight are bounded by the prefetch,
not by threads.  ``benchmarks/models.py`` runs it as the ``async-consumer:PxPREFETCH``
model.

Only the happy path of the callback protocol is kept: no retries or delays, no cancellation
claim, flow control, signing, redirects, size caps, call log or middleware; a failed call is
stored as dramatiq's exception record.  So it measures what the *transport and the
concurrency model* cost per call, a floor for any asyncio rewrite of the worker, not a
drop-in replacement.  Needs ``pip install aio-pika aiohttp``.  Settings come from the same
environment as the worker: ``DISPATCH_BROKER_URL``, ``DISPATCH_RESULTS_URL``, ``DISPATCH_QUEUE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys

RESULT_TTL_MS = 600_000


async def serve(prefetch: int) -> None:
    # Imported here, so the parent of --processes N (which only waits) stays a bare interpreter.
    import aio_pika
    import aiohttp
    import redis.asyncio as aredis

    queue_name = os.environ.get("DISPATCH_QUEUE", "dispatch")
    connection = await aio_pika.connect_robust(os.environ["DISPATCH_BROKER_URL"])
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(queue_name, ensure=False)
    # A blocking pool: a task waits for one of the 64 connections (the plain pool raises when they are all busy).
    pool = aredis.BlockingConnectionPool.from_url(os.environ["DISPATCH_RESULTS_URL"], max_connections=64, timeout=None)
    store = aredis.Redis(connection_pool=pool)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))

    async def handle(message) -> None:
        data = json.loads(message.body)
        url, method, params, options = (*data["args"], None, None, None)[:4]
        try:
            timeout = aiohttp.ClientTimeout(total=(options or {}).get("timeout", 30))
            query = {k: str(v) for k, v in (params or {}).items()}
            async with session.request(method or "GET", url, params=query, timeout=timeout) as response:
                answer = json.loads(await response.read())
            if answer.get("status") != "success":
                raise RuntimeError(f"endpoint answered {answer!r}")
            outcome = answer.get("retval")
        except Exception as exc:
            outcome = {"__t": "dramatiq.results.Exception", "exn": {"type": type(exc).__name__, "msg": str(exc)}}
        key = f"dispatch:result:{data['message_id']}"
        async with store.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.lpush(key, json.dumps(outcome, separators=(",", ":")))
            pipe.pexpire(key, RESULT_TTL_MS)
            await pipe.execute()
        await message.ack()

    tasks: set[asyncio.Task] = set()

    async def on_message(message) -> None:
        task = asyncio.create_task(handle(message))  # the consumer callback returns at once
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await queue.consume(on_message)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"async consumer on {queue_name}, prefetch {prefetch}", flush=True)
    await stop.wait()
    await connection.close()
    await session.close()
    await store.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=1024, help="messages in flight per process")
    args = parser.parse_args(argv)
    if args.processes > 1:  # a parent that only starts and stops the children, like dramatiq's
        children = [
            subprocess.Popen([sys.executable, __file__, "--prefetch", str(args.prefetch)])
            for _ in range(args.processes)
        ]
        signal.signal(signal.SIGTERM, lambda *_: [c.terminate() for c in children])
        return max(c.wait() for c in children)
    asyncio.run(serve(args.prefetch))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

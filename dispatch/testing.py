"""Run calls in-process, with no RabbitMQ or Redis: for tests and the embedded demo.

:func:`stub_worker` swaps a dramatiq StubBroker with in-memory results under
the ``http_dispatch`` actor and runs a worker in this process, so
``URL(...).send(...).get()`` performs the real HTTP request and returns the
real answer.  Only the queue and the results store are in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from dramatiq.brokers.stub import StubBroker

from .broker import build_broker


@contextmanager
def stub_worker(worker_threads: int = 4) -> Iterator[StubBroker]:
    """Within this block, calls go through an in-memory broker and an in-process worker."""
    from . import tasks

    settings = dataclasses.replace(tasks.settings, broker_url="stub://", results_url="stub://")
    stub = build_broker(settings)
    previous = tasks.http_dispatch.broker
    stub.declare_actor(tasks.http_dispatch)
    tasks.http_dispatch.broker = stub
    dramatiq.set_broker(stub)
    worker = dramatiq.Worker(stub, worker_timeout=50, worker_threads=worker_threads)
    worker.start()
    try:
        yield stub
    finally:
        worker.stop()
        stub.close()
        tasks.http_dispatch.broker = previous
        dramatiq.set_broker(previous)

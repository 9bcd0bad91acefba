"""Run calls in-process, with no RabbitMQ or Redis: for tests and the embedded demo.

:func:`stub_worker` swaps a dramatiq StubBroker with in-memory results under
the ``http_dispatch`` actor and runs a worker in this process, so
``URL(...).send(...).get()`` performs the real HTTP request and returns the
real answer.  Only the queue and the results store are in memory.

This module is also a pytest plugin (entry point ``pytest11: dispatch``, or
``-p dispatch.testing``) providing the :func:`dispatch_stub` fixture, so a
project's own tests can exercise code that sends calls without any services::

    def test_quote(dispatch_stub, pricing_service):
        assert quote(pricing_service.url, 6, 7) == 42
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import QueueJoinTimeout

from .actor import default_dispatcher
from .call import Call, is_call
from .runtime import build_runtime, get_runtime, set_runtime


@contextmanager
def stub_worker(worker_threads: int = 4) -> Iterator[StubBroker]:
    """Within this block, calls go through an in-memory broker and an in-process worker."""
    dispatcher = default_dispatcher()  # declared on the configured broker first: building it connects to nothing
    previous = get_runtime()
    stub = build_runtime(
        dataclasses.replace(previous.settings, broker_url="stub://", results_url="stub://"), previous.transport
    )
    broker = stub.broker
    assert isinstance(broker, StubBroker)
    set_runtime(stub)
    broker.declare_actor(dispatcher)
    dispatcher.broker = broker
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=worker_threads)
    worker.start()
    try:
        yield broker
    finally:
        worker.stop()
        broker.close()
        dispatcher.broker = previous.broker
        set_runtime(previous)


@dataclasses.dataclass(frozen=True)
class SentCall:
    """One call the code under test sent: what it asked for, and its message id."""

    url: str
    method: str
    params: dict[str, Any]
    message_id: str


class DispatchStub:
    """What the :func:`dispatch_stub` fixture yields: the stub broker plus helpers for assertions.

    ``sent`` lists every call enqueued during the test, in order -- useful
    when the code under test fires calls and never waits for them.
    """

    def __init__(self, broker: StubBroker) -> None:
        self.broker = broker
        self.sent: list[SentCall] = []
        broker.add_middleware(_Recorder(self.sent))

    @property
    def queue_name(self) -> str:
        return str(default_dispatcher().queue_name)

    def join(self, timeout: float = 10) -> None:
        """Wait until every call sent so far has finished (succeeded or failed).

        Raises TimeoutError after ``timeout`` seconds.  Failed calls do not
        raise here: read their outcome with ``res.get()``.
        """
        try:
            # The stub broker also waits out calls retried through the delay queue.
            self.broker.join(self.queue_name, timeout=int(timeout * 1000), fail_fast=False)
        except QueueJoinTimeout:
            raise TimeoutError(f"calls still unfinished after {timeout} seconds") from None


class _Recorder(dramatiq.Middleware):
    """Appends every new call enqueued on the broker to ``sent``."""

    def __init__(self, sent: list[SentCall]) -> None:
        self.sent = sent

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        # Redeliveries the worker schedules (options["retries"]) are not new calls.
        if is_call(broker, message) and not message.options.get("retries"):
            call = Call.from_message(message)
            self.sent.append(SentCall(call.url, call.method, call.params, message.message_id))


try:
    import pytest
except ImportError:  # stub_worker() is usable without pytest (the embedded demo)
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def dispatch_stub() -> Iterator[DispatchStub]:
        """Calls sent during the test run in-process: no RabbitMQ, no Redis, real HTTP.

        Yields a :class:`DispatchStub` (``.sent``, ``.join()``, ``.broker``).
        """
        with stub_worker() as broker:
            yield DispatchStub(broker)

"""Integration fixtures: an isolated RabbitMQ vhost and Redis database, real endpoints, a real worker.

The helpers and constants they use live in support.py.  ``TEST_ENV`` is
applied to ``os.environ`` in ``pytest_configure`` -- before any test runs,
so before dispatch reads its settings -- and the previous values are put
back in ``pytest_unconfigure``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from .support import (
    ENDPOINTS,
    QUEUE,
    REDIS_DB,
    TEST_ENV,
    VHOST,
    Endpoint,
    IsolatedWorker,
    Worker,
    delete_queues,
    rabbitmqctl,
)

_saved_environ: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    for name, value in TEST_ENV.items():
        _saved_environ.setdefault(name, os.environ.get(name))
        os.environ[name] = value


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in _saved_environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_environ.clear()


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    """A RabbitMQ vhost of the test run's own; its queues are deleted afterwards."""
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    yield VHOST
    delete_queues(QUEUE)


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    import redis

    client = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"])
    yield REDIS_DB
    for key in client.scan_iter(f"*{QUEUE}*", count=1000):  # only this run's: others may share the database
        client.delete(key)


@pytest.fixture(scope="session")
def python_endpoint() -> Iterator[Endpoint]:
    endpoint = Endpoint("python", [sys.executable, str(ENDPOINTS / "endpoint.py")])
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def node_endpoint() -> Iterator[Endpoint]:
    endpoint = Endpoint("node", ["node", str(ENDPOINTS / "endpoint.js")])
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session", params=["python", "node"])
def endpoint(request) -> Endpoint:
    """Each test using this runs once against the Python endpoint and once against the Node one."""
    return request.getfixturevalue(f"{request.param}_endpoint")


@pytest.fixture(scope="session")
def worker(vhost, redis_db, python_endpoint, tmp_path_factory) -> Iterator[Worker]:
    """One worker for the session, ready once it has completed a real call."""
    from dispatch import URL

    process = Worker(tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        assert URL(python_endpoint.url("/health")).send().get(timeout=60) == "ok", process.log()
        yield process
    finally:
        process.stop()


@pytest.fixture
def make_worker(vhost, redis_db, python_endpoint, tmp_path) -> Iterator[Callable[..., IsolatedWorker]]:
    """``make_worker(DISPATCH_X="...")`` starts a ready worker with those settings; stopped after the test.

    ``queue=`` makes it consume an existing queue (e.g. a crashed worker's).
    """
    started: list[IsolatedWorker] = []

    def start(
        processes: int = 1, threads: int = 4, queue: str | None = None, ready: bool = True, **env: str
    ) -> IsolatedWorker:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = IsolatedWorker(log, env, queue=queue, processes=processes, threads=threads)
        started.append(worker)
        return worker.ready(python_endpoint) if ready else worker

    yield start
    for worker in started:
        worker.stop()
    for queue in {worker.queue for worker in started}:
        delete_queues(queue)

"""What the integration tests share: the run's vhost, queue and settings, and helpers (the ones unit tests
use too are in ``tests/support.py``).

Only names live here -- no fixtures (those are in conftest.py) and no side
effects at import: conftest's ``pytest_configure`` applies ``TEST_ENV`` to
``os.environ`` for the run, so the test process (the client) and the worker
processes it starts talk to the same vhost, queue and results database --
and never to the operator's own ``/`` vhost or Redis database 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import requests

# The helpers unit tests share, re-exported so that an integration test finds all it uses in ``.support``.
from tests.support import ROOT, ServedProcess, free_port
from tests.support import SIGNING_SECRET as SIGNING_SECRET
from tests.support import dispatch as dispatch
from tests.support import run_demo as run_demo
from tests.support import send_signed as send_signed
from tests.support import wait_for as wait_for

ENDPOINTS = Path(__file__).resolve().parent / "endpoints"

VHOST = "dispatch-test"
REDIS_DB = 9
RUN = uuid.uuid4().hex[:8]
QUEUE = f"dispatch-test-{RUN}"  # every queue of this run starts with it

TEST_ENV = {
    "DISPATCH_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
    "DISPATCH_RESULTS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
    "DISPATCH_QUEUE": QUEUE,
    "DISPATCH_MAX_ATTEMPTS": "3",
    "DISPATCH_TIMEOUT": "5",
    "DISPATCH_BACKOFF_INITIAL": "0.05",
    "DISPATCH_BACKOFF_MAX": "0.2",
    "DISPATCH_MAX_RESPONSE_BYTES": "1000000",
}


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


class Endpoint(ServedProcess):
    """An HTTP endpoint process speaking the callback protocol."""

    def __init__(self, language: str, command: list[str]) -> None:
        self.language = language
        port = free_port()
        super().__init__([*command, str(port)], None, None, "/health", port=port, name=f"{language} endpoint")

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, key: str) -> int:
        return requests.get(f"{self.base}/hits/{key}", timeout=5).json()["retval"]


class Worker:
    """A real ``dramatiq <modules>`` process (``dispatch.tasks`` unless told); its log is kept for assertions."""

    def __init__(
        self,
        log_path: Path,
        env: dict[str, str] | None = None,
        processes: int = 1,
        threads: int = 4,
        modules: Sequence[str] = ("dispatch.tasks",),
    ):
        self.log_path = log_path
        self.log_file = open(log_path, "w")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", *modules, "--processes", str(processes), "--threads", str(threads)],
            env={**os.environ, **(env or {})},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group, so kill() reaches the worker children too
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its worker processes), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def child_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


def unique_key() -> str:
    return uuid.uuid4().hex


def queue_depth(queue: str) -> int:
    """Messages in ``queue`` right now, asked of RabbitMQ itself (0 if it was never declared)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(TEST_ENV["DISPATCH_BROKER_URL"]))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        connection.close()


def delete_queues(queue: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(TEST_ENV["DISPATCH_BROKER_URL"]))
    channel = connection.channel()
    from dispatch.brokers.delays import TIERS, wait_queue_name

    for name in (queue, f"{queue}.DQ", f"{queue}.XQ", *(wait_queue_name(queue, tier) for tier in TIERS)):
        channel.queue_delete(name)
    connection.close()


@contextlib.contextmanager
def length_limited_queue(queue: str, max_length: int) -> Iterator[str]:
    """``queue`` (not yet declared) with a RabbitMQ policy that refuses publishes past ``max_length``; deleted after."""
    policy = rabbitmqctl(
        "set_policy", "-p", VHOST, queue, f"^{queue}$",
        json.dumps({"max-length": max_length, "overflow": "reject-publish"}), "--apply-to", "queues",
    )  # fmt: skip
    assert policy.returncode == 0, policy.stderr
    try:
        yield queue
    finally:
        rabbitmqctl("clear_policy", "-p", VHOST, queue)
        delete_queues(queue)


class IsolatedWorker(Worker):
    """A worker with settings of its own (``env``) consuming a queue of its own.

    The test process's actor is bound to the session queue, so calls for
    this worker are built by the actor (validated as usual) and then
    enqueued on this worker's queue.
    """

    def __init__(self, log_path: Path, env: dict[str, str], queue: str | None = None, **kwargs) -> None:
        self.queue = queue or f"{QUEUE}-{uuid.uuid4().hex[:8]}"
        super().__init__(log_path, {**env, "DISPATCH_QUEUE": self.queue}, **kwargs)

    def send(self, url: str, method: str = "GET", params: dict | None = None, **options):
        return send_to(self.queue, url, method, params, **options)

    def ready(self, endpoint: Endpoint) -> IsolatedWorker:
        """Wait until the worker has finished a call (any outcome: its policy may refuse loopback)."""
        from dispatch import DispatchError

        with contextlib.suppress(DispatchError):
            self.send(endpoint.url("/health")).get(timeout=60)
        return self


def send_to(queue: str, url: str, method: str = "GET", params: dict | None = None, **options):
    """Send a call (validated by the actor as usual) to ``queue`` instead of the session queue."""
    from dispatch.tasks import http_dispatch

    message = http_dispatch.message(url, method, params, options or None)
    return http_dispatch.broker.enqueue(message.copy(queue_name=queue))

"""`make demo`: the main job end to end, narrated.

Starts the example receiver (examples/receivers/plain_python.py) and a
worker (`dramatiq dispatch.tasks`), sends calls GET and POST, shows a
remote failure, prints the results, and says where to look in RabbitMQ's
management UI.  When no RabbitMQ or Redis can be reached it runs embedded
instead -- dramatiq's StubBroker and an in-process worker, still making
real HTTP calls -- and says so.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUEUE = "dispatch-demo"
WORKER_LOG = Path(tempfile.gettempdir()) / "dispatch-demo-worker.log"


def reachable(url: str, default_port: int) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(*command: str, **kwargs):
    proc = subprocess.Popen(command, **kwargs)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"receiver did not start on port {port}")


def run_calls(base: str) -> None:
    from dispatch import URL, RemoteExecuteError

    print("\n1. GET  /multiply?x=10&y=10")
    res = URL(f"{base}/multiply").send(x=10, y=10)
    print(f"   queued as message {res.message_id}; res.get() ->", res.get(timeout=30))

    print("2. POST /multiply  (x=6, y=7 form-encoded)")
    res = URL(f"{base}/multiply", method="POST").send(x=6, y=7)
    print(f"   queued as message {res.message_id}; res.get() ->", res.get(timeout=30))

    print("3. GET  /divide?x=1&y=0  (the receiver answers status=failure)")
    res = URL(f"{base}/divide").get_async(x=1, y=0)
    try:
        res.get(timeout=30)
    except RemoteExecuteError as exc:
        print(f"   message {res.message_id}; res.get() raised RemoteExecuteError: {exc}")

    print("4. ten calls at once")
    handles = [URL(f"{base}/multiply").send(x=i, y=i) for i in range(10)]
    print("   results:", [h.get(timeout=30) for h in handles])


def main() -> None:
    broker_url = os.environ.setdefault("DISPATCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    results_url = os.environ.setdefault("DISPATCH_RESULTS_URL", "redis://127.0.0.1:6379/0")
    os.environ.setdefault("DISPATCH_QUEUE", QUEUE)
    real = reachable(broker_url, 5672) and reachable(results_url, 6379)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    with ExitStack() as stack:
        stack.enter_context(process(sys.executable, str(HERE / "receivers" / "plain_python.py"), str(port)))
        wait_for_port(port)
        if real:
            print(f"RabbitMQ at {broker_url}, results in Redis at {results_url}.")
            print(f"Starting a worker: dramatiq dispatch.tasks  (queue {os.environ['DISPATCH_QUEUE']!r})")
            log = stack.enter_context(open(WORKER_LOG, "w"))
            stack.enter_context(
                process(
                    sys.executable, "-m", "dramatiq", "dispatch.tasks", "-p", "1", "-t", "4", stdout=log, stderr=log
                )
            )
        else:
            print("No RabbitMQ/Redis reachable: running EMBEDDED (dramatiq StubBroker, in-memory results,")
            print("an in-process worker). The HTTP calls are real; nothing is durable. Start RabbitMQ and")
            print("Redis (make services, or docker compose -f docker/compose.yaml up) for the real thing.")
            os.environ["DISPATCH_BROKER_URL"] = os.environ["DISPATCH_RESULTS_URL"] = "stub://"
            from dispatch.testing import stub_worker

            stack.enter_context(stub_worker())
        run_calls(base)

    if real:
        queue = os.environ["DISPATCH_QUEUE"]
        print(f"""
Where to look: RabbitMQ's management UI, http://127.0.0.1:15672 (guest/guest), tab Queues:
  {queue}      calls waiting for a worker (Ready) or being performed (Unacked)
  {queue}.DQ   calls delayed for a later attempt
  {queue}.XQ   calls that failed for good -- the /divide call above is there now
The worker logged one line per call (full log: {WORKER_LOG}):""")
        for line in WORKER_LOG.read_text().splitlines():
            if "[dispatch.calls]" in line:
                print("  ", line.split("[INFO] ", 1)[-1])
    print("\nDemo finished.")


if __name__ == "__main__":
    main()

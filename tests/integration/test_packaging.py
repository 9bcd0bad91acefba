"""The demo end to end on the real RabbitMQ and Redis (the test vhost and database).

The packaging checks that need no services (the embedded demo, the docker/
files, the CI entry point) are in tests/unit/test_packaging.py.
"""

from __future__ import annotations

import re

import pytest

from .support import run_demo


@pytest.mark.integration
def test_demo_runs_end_to_end_on_rabbitmq(vhost, redis_db):
    out = run_demo(DISPATCH_QUEUE="dispatch-demo-test")
    assert "Starting a worker: dramatiq dispatch.tasks" in out
    assert "res.get() -> 100" in out and "res.get() -> 42" in out
    assert "raised RemoteExecuteError: division by zero" in out
    assert "results: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in out
    assert "http://127.0.0.1:15672" in out and "dispatch-demo-test.XQ" in out
    assert re.search(r"call \S+ GET http://127.0.0.1:\d+/divide failed: RemoteExecuteError", out)

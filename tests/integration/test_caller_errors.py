"""What a caller sees when the outcome does not come, against a real RabbitMQ and Redis (issue 21.4).

``ResultTimeout`` says why when it is plain: RabbitMQ, asked once the wait has run out, has no
consumer on the call's queue -- or names how many workers consume it.
"""

from __future__ import annotations

import uuid

import pytest

from dispatch import URL, ResultTimeout

from .support import QUEUE, delete_queues, send_to

pytestmark = pytest.mark.integration


def test_a_call_on_a_queue_no_worker_consumes_times_out_saying_so(vhost, redis_db):
    queue = f"{QUEUE}-nobody-{uuid.uuid4().hex[:8]}"
    try:
        res = send_to(queue, "http://127.0.0.1:9/never")
        with pytest.raises(ResultTimeout) as caught:
            res.get(timeout=1)
    finally:
        delete_queues(queue)
    assert str(caught.value) == (
        f"no outcome for call {res.message_id} after 1 seconds: no worker is consuming queue {queue!r} -- "
        "start one with `dispatch worker` (or `dramatiq dispatch.tasks`); the call stays queued until then"
    )


def test_a_call_still_running_times_out_naming_the_workers_on_its_queue(worker, python_endpoint):
    res = URL(python_endpoint.url("/slow")).send(ms=2500)
    with pytest.raises(ResultTimeout, match=rf"1 worker\(s\) consume queue '{QUEUE}': the call is still queued or run"):
        res.get(timeout=1)
    assert res.get(timeout=20) == "slow"

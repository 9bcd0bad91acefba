"""Tasks applied over HTTP (``POST /tasks/{actor_name}``): a real gateway, a real worker, RabbitMQ and Redis.

The actors are in ``gateway_actors.py``, on a queue of their own that only this
module's worker consumes (``dramatiq tests.integration.gateway_actors``); the
gateway lists two of them in ``DISPATCH_GATEWAY_ACTORS``.  Outcomes are read with
the same ``GET /calls/{id}`` as calls: dispatch keys outcomes by message id alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from .support import QUEUE, Worker, delete_queues, queue_depth
from .test_gateway import TOKEN, Gateway

pytestmark = pytest.mark.integration

ACTORS = "tests.integration.gateway_actors"
TASKS_QUEUE = f"{QUEUE}-tasks"  # gateway_actors.QUEUE, without importing it here
MAX_MESSAGE_BYTES = 4096


@pytest.fixture(scope="module")
def tasks_worker(vhost, redis_db, tmp_path_factory) -> Iterator[Worker]:
    """``dramatiq tests.integration.gateway_actors``: consumes only the actors' queue."""
    process = Worker(tmp_path_factory.mktemp("tasks-worker") / "worker.log", modules=[ACTORS])
    yield process
    process.stop()
    delete_queues(TASKS_QUEUE)


@pytest.fixture(scope="module")
def tasks_gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    process = Gateway(
        tmp_path_factory.mktemp("tasks-gateway") / "gateway.log",
        DISPATCH_GATEWAY_ACTORS=f"{ACTORS}:add, {ACTORS}:divide",
        DISPATCH_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def idle_tasks_gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    """The same actors, but on a queue no worker consumes (the actors' queue follows DISPATCH_QUEUE)."""
    queue = f"{QUEUE}-idle-tasks-{uuid.uuid4().hex[:8]}"
    process = Gateway(
        tmp_path_factory.mktemp("idle-tasks-gateway") / "gateway.log",
        DISPATCH_QUEUE=queue,
        DISPATCH_GATEWAY_ACTORS=f"{ACTORS}:add,{ACTORS}:divide",
        DISPATCH_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
    )
    process.tasks_queue = f"{queue}-tasks"
    yield process
    process.stop()
    delete_queues(process.tasks_queue)
    delete_queues(queue)


@pytest.fixture(scope="module")
def ready(tasks_worker, tasks_gateway) -> Gateway:
    """The gateway, once the worker has run one task it queued."""
    response = tasks_gateway.post_task("add", {"args": [0, 0]})
    assert response.status_code == 202, response.text
    assert tasks_gateway.outcome(response.json()["id"], timeout=60)["state"] == "success", tasks_worker.log()
    return tasks_gateway


def test_a_task_is_applied_and_its_outcome_read_like_a_call(ready):
    response = ready.post_task("add", {"args": [2, 3]})
    assert response.status_code == 202, response.text
    call_id = response.json()["id"]
    assert response.json()["status_url"] == response.headers["Location"] == f"/calls/{call_id}"
    assert ready.outcome(call_id) == {"id": call_id, "state": "success", "result": 5}


def test_keyword_arguments_and_any_json_values(ready):
    call_id = ready.post_task("add", {"kwargs": {"x": [1, {"a": None}], "y": ["b", 2.5]}}).json()["id"]
    assert ready.outcome(call_id)["result"] == [1, {"a": None}, "b", 2.5]


def test_a_failing_actor_shows_its_error_type_and_message(ready):
    call_id = ready.post_task("divide", {"args": [1, 0]}).json()["id"]
    assert ready.outcome(call_id) == {
        "id": call_id,
        "state": "failure",
        "error": {"type": "ZeroDivisionError", "message": "division by zero"},
    }


def test_a_finished_task_cannot_be_cancelled(ready):
    call_id = ready.post_task("add", {"args": [1, 1]}).json()["id"]
    assert ready.outcome(call_id)["result"] == 2
    assert ready.delete(f"/calls/{call_id}").status_code == 409


def test_a_pending_task_is_pending_and_cannot_be_cancelled(idle_tasks_gateway):
    gateway = idle_tasks_gateway
    before = queue_depth(gateway.tasks_queue)
    call_id = gateway.post_task("add", {"args": [4, 4]}).json()["id"]
    assert queue_depth(gateway.tasks_queue) == before + 1
    assert gateway.get(f"/calls/{call_id}").json() == {"id": call_id, "state": "pending"}
    response = gateway.delete(f"/calls/{call_id}")  # workers check cancellation for HTTP calls only
    assert response.status_code == 409, response.text
    assert "task applied over /tasks (add)" in response.json()["detail"]
    assert gateway.state(call_id) == "pending"


@pytest.mark.parametrize("actor", ["forgetful", "http_dispatch", "nope"])
def test_an_actor_not_listed_is_404_and_nothing_is_queued(idle_tasks_gateway, actor):
    before = queue_depth(idle_tasks_gateway.tasks_queue)
    response = idle_tasks_gateway.post_task(actor, {"args": [1]})
    assert response.status_code == 404, response.text
    assert "DISPATCH_GATEWAY_ACTORS" in response.json()["detail"]
    assert queue_depth(idle_tasks_gateway.tasks_queue) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"args": {"x": 1}}, "valid list"),
        ({"args": 3}, "valid list"),
        ({"kwargs": [1, 2]}, "valid dictionary"),
        ({"args": [1, 2], "queue": "other"}, "Extra inputs are not permitted"),
        ({"args": [1, 2, 3]}, "too many positional arguments"),
        ({"args": [1, 2], "kwargs": {"z": 2}}, "unexpected keyword argument 'z'"),
        ({"args": [1]}, "add(x, y): missing a required argument: 'y'"),
        ({"args": ["x" * MAX_MESSAGE_BYTES, 1]}, "DISPATCH_MAX_MESSAGE_BYTES"),
        ([1, 2], "valid dictionary"),
    ],
)
def test_bad_arguments_are_422_and_nothing_is_queued(idle_tasks_gateway, body, message):
    before = queue_depth(idle_tasks_gateway.tasks_queue)
    response = idle_tasks_gateway.post_task("add", body)
    assert response.status_code == 422, response.text
    assert any(message in error["msg"] for error in response.json()["detail"]), response.text
    assert queue_depth(idle_tasks_gateway.tasks_queue) == before


def test_tasks_need_the_token(idle_tasks_gateway):
    before = queue_depth(idle_tasks_gateway.tasks_queue)
    assert idle_tasks_gateway.post_task("add", {"args": [1, 2]}, token=None).status_code == 401
    assert idle_tasks_gateway.post_task("add", {"args": [1, 2]}, token=TOKEN[::-1]).status_code == 401
    assert queue_depth(idle_tasks_gateway.tasks_queue) == before


def test_the_openapi_document_names_the_listed_actors(idle_tasks_gateway):
    document = requests.get(idle_tasks_gateway.base + "/openapi.json", timeout=10).json()
    assert "(here: add, divide)" in document["paths"]["/tasks/{actor_name}"]["post"]["description"]

"""``dispatch result``, ``dispatch cancel`` and ``dispatch call --delay``, run as a user runs them.

Real subprocesses against the session worker, RabbitMQ and Redis (see
test_cli.py): an outcome is read back in another process than the one that
sent the call, a delayed call is cancelled before a worker ever sends it.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from .support import delete_queues, dispatch, unique_key, wait_for
from .test_cli import fresh_queue, queue_exists

pytestmark = pytest.mark.integration

MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def send(*args: str) -> str:
    """``dispatch call ARGS...`` without --wait: the one message id it prints."""
    done = dispatch("call", *args)
    assert done.returncode == 0, done.stderr
    (message_id,) = done.stdout.split()
    assert MESSAGE_ID.fullmatch(message_id)
    return message_id


def test_result_of_a_finished_call_plain_and_json(worker, python_endpoint):
    message_id = send(python_endpoint.url("/multiply"), "x=6", "y=7")
    assert dispatch("result", message_id, "--wait", "30").returncode == 0  # finished: now read it without waiting

    done = dispatch("result", message_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{message_id}\tsuccess\t42\n"

    as_json = dispatch("result", message_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"id": message_id, "state": "success", "result": 42}

    table = dispatch("result", message_id, env={"TTY_COMPATIBLE": "1", "COLUMNS": "100", "NO_COLOR": "1"})
    assert table.returncode == 0 and "│" in table.stdout and message_id in table.stdout and "42" in table.stdout


def test_result_of_a_failed_call_names_the_error_and_exits_1(worker, python_endpoint):
    message_id = send(python_endpoint.url("/fail"), "reason=division by zero")
    done = dispatch("result", message_id, "--wait", "30")
    assert done.returncode == 1
    assert done.stdout == f"{message_id}\tfailure\tRemoteExecuteError: division by zero\n"

    as_json = dispatch("result", message_id, "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"] == {"type": "RemoteExecuteError", "message": "division by zero"}


def test_result_wait_waits_for_a_call_in_flight(worker, python_endpoint):
    key = unique_key()
    message_id = send(python_endpoint.url("/slow"), "ms=3000", f"key={key}")  # long enough to look at it started
    wait_for(lambda: python_endpoint.hits(key) == 1, 30, "the call to be in progress")
    now = dispatch("result", message_id)
    assert now.returncode == 0 and now.stdout == f"{message_id}\tstarted\t-\n"

    done = dispatch("result", message_id, "--wait", "30", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"id": message_id, "state": "success", "result": "slow"}


def test_result_wait_that_runs_out_says_why_and_exits_1(vhost, redis_db):
    queue = fresh_queue()  # nobody consumes it
    env = {"DISPATCH_QUEUE": queue}
    try:
        message_id = send_on(queue, "http://127.0.0.1:9/ok")
        done = dispatch("result", message_id, "--wait", "1", env=env)
        assert done.returncode == 1
        assert done.stdout == f"{message_id}\tpending\t-\n"
        assert f"no outcome for call {message_id} after 1s" in done.stderr
        assert f"no worker is consuming queue {queue!r}" in done.stderr

        as_json = dispatch("result", message_id, "--wait", "1", "--json", env=env)
        assert as_json.returncode == 1
        document = json.loads(as_json.stdout)
        assert (document["id"], document["state"], document["error"]["type"]) == (
            message_id,
            "pending",
            "ResultTimeout",
        )
    finally:
        delete_queues(queue)


def send_on(queue: str, *args: str) -> str:
    done = dispatch("call", *args, env={"DISPATCH_QUEUE": queue})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cancel_of_a_delayed_call_means_it_is_never_sent(worker, python_endpoint):
    key = unique_key()
    message_id = send(python_endpoint.url("/multiply"), "x=1", "y=1", f"key={key}", "--delay", "3")
    scheduled = dispatch("result", message_id)
    assert scheduled.returncode == 0 and scheduled.stdout == f"{message_id}\tscheduled\t-\n"

    done = dispatch("cancel", message_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{message_id}\tcancelled\n"

    shown = dispatch("result", message_id, "--json")
    assert shown.returncode == 1
    document = json.loads(shown.stdout)
    assert document["state"] == "cancelled" and document["error"]["type"] == "CallCancelled"
    plain = dispatch("result", message_id)
    assert plain.returncode == 1 and plain.stdout.startswith(f"{message_id}\tcancelled\tCallCancelled: ")

    wait_for(lambda: "cancelled: not sent" in worker.log() and message_id in worker.log(), 30, "the worker's skip")
    assert python_endpoint.hits(key) == 0


def test_cancel_of_a_finished_call_exits_1(worker, python_endpoint):
    message_id = send(python_endpoint.url("/multiply"), "x=2", "y=2")
    assert dispatch("result", message_id, "--wait", "30").returncode == 0

    done = dispatch("cancel", message_id)
    assert done.returncode == 1
    assert done.stdout == f"{message_id}\tnot_cancelled\n"
    assert "already started or finished" in done.stderr

    as_json = dispatch("cancel", message_id, "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"id": message_id, "cancelled": False, "state": "success"}
    assert dispatch("result", message_id).stdout == f"{message_id}\tsuccess\t4\n"  # the outcome is untouched


def test_call_delay_with_wait_is_performed_no_earlier_than_asked(worker, python_endpoint):
    started = time.monotonic()
    done = dispatch("call", python_endpoint.url("/multiply"), "x=6", "y=7", "--delay", "2", "--wait", "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    assert time.monotonic() - started >= 2
    assert re.search(r"queued [0-9a-f-]{36}", done.stderr)


def test_call_delay_json_shows_the_calls_scheduled(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/multiply"), "x=1", "y=1", "--delay", "600", "--json")
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["calls"]
    assert entry["status"] == "scheduled"
    assert dispatch("cancel", entry["message_id"]).returncode == 0  # leave nothing behind to run in ten minutes


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--delay", "-1"], "--delay takes 0 to 2592000 seconds"),
        (["--delay", "2592001"], "--delay takes 0 to 2592000 seconds"),
        (["--delay", "nan"], "--delay takes 0 to 2592000 seconds"),
        (["--delay", "soon"], "Invalid value"),
        (["--delay", "30", "--wait", "--timeout", "10"], "longer than the delay"),
    ],
)
def test_bad_delay_exits_2_and_sends_nothing(vhost, args, complaint):
    queue = fresh_queue()
    done = dispatch("call", "http://127.0.0.1:9/ok", *args, env={"DISPATCH_QUEUE": queue})
    assert done.returncode == 2
    assert complaint in done.stderr
    assert done.stdout == ""
    assert not queue_exists(queue)


@pytest.mark.parametrize("command", ["result", "cancel"])
@pytest.mark.parametrize("bad_id", ["nope", "", "7c0e9a1e-3b5f-4c1d-9a57"])
def test_a_bad_id_exits_2_and_changes_nothing(vhost, command, bad_id):
    queue = fresh_queue()
    done = dispatch(command, bad_id, env={"DISPATCH_QUEUE": queue})
    assert done.returncode == 2
    assert "is not a call id" in done.stderr and done.stdout == ""
    as_json = dispatch(command, bad_id, "--json", env={"DISPATCH_QUEUE": queue})
    assert as_json.returncode == 2
    assert "is not a call id" in json.loads(as_json.stdout)["error"]["message"]
    assert not queue_exists(queue)


def test_result_with_redis_down_names_where_it_looked(vhost):
    env = {"DISPATCH_RESULTS_URL": "redis://:r3dispw@127.0.0.1:6999/4"}
    message_id = "7c0e9a1e-3b5f-4c1d-9a57-0e5f1c2d3b4a"
    for command in ("result", "cancel"):
        done = dispatch(command, message_id, env=env)
        assert done.returncode == 1
        assert "Redis at 127.0.0.1:6999 db 4" in done.stderr and "r3dispw" not in done.stderr

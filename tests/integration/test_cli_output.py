"""The CLI's output where it is piped -- plain lines for grep, cut and awk -- and its errors when a service is down.

Every command here runs as a subprocess with stdout captured, which is
exactly the piped case; the terminal layout is asked for with
``TTY_COMPATIBLE=1`` (Rich's switch).  "Down" is a port nothing listens on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from dispatch import RemoteExecuteError

from .support import ROOT, delete_queues, dispatch, unique_key, wait_for
from .test_cli import fresh_queue

pytestmark = pytest.mark.integration

MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BROKER_DOWN = {"DISPATCH_BROKER_URL": "amqp://admin:s3cret@127.0.0.1:5999/some-vhost", "DISPATCH_SEND_TIMEOUT": "0"}
#: A Redis nobody listens on; a waiting read gives up on it after 2 s of failures instead of the default 30.
REDIS_DOWN = {"DISPATCH_RESULTS_URL": "redis://:r3dispw@127.0.0.1:6999/4", "DISPATCH_RESULTS_STORE_PATIENCE": "2"}


def shell(pipeline: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a shell pipeline in which ``dispatch`` is this checkout's CLI."""
    cli = f"{shlex.quote(sys.executable)} -m dispatch.cli"
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'dispatch() {{ {cli} "$@"; }}; {pipeline}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )


def test_dead_list_piped_is_one_line_per_call_and_a_grepped_id_replays(make_worker, python_endpoint):
    own = make_worker()
    env = {"DISPATCH_QUEUE": own.queue}
    key = unique_key()
    long_reason = " ".join(["the order service said no"] * 6)  # a row far wider than 80 columns must still be one line
    dead = own.send(python_endpoint.url("/fail"), params={"reason": f"{key} {long_reason}"})
    other = own.send(python_endpoint.url("/fail"), params={"reason": "something else"})
    for handle in (dead, other):
        with pytest.raises(RemoteExecuteError):
            handle.get(timeout=30)

    def listed() -> list[list[str]] | None:
        done = dispatch("dead", "list", env=env)
        assert done.returncode == 0, done.stderr
        rows = [line.split("\t") for line in done.stdout.splitlines()]
        return rows if len(rows) == 2 else None

    rows = wait_for(listed, 30, "two dead letters")
    assert sorted(row[0] for row in rows) == sorted([dead.message_id, other.message_id])
    assert all(len(row) == 5 and MESSAGE_ID.fullmatch(row[0]) for row in rows)
    mine = next(row for row in rows if row[0] == dead.message_id)
    assert mine[2:4] == ["GET", python_endpoint.url("/fail")]
    assert mine[4] == f"RemoteExecuteError: {key} {long_reason}"  # the error is the last field, whole

    grepped = shell(f"dispatch dead list | grep {key} | cut -f1", {**os.environ, **env})
    assert grepped.returncode == 0, grepped.stderr
    assert grepped.stdout.split() == [dead.message_id]

    replayed = shell(f"dispatch dead replay $(dispatch dead list | grep {key} | cut -f1)", {**os.environ, **env})
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.splitlines() == [f"{dead.message_id}\treplayed"]  # once, even if it died again meanwhile
    with pytest.raises(RemoteExecuteError):  # it ran again, and failed again
        dead.get(timeout=30)

    table = dispatch("dead", "list", env={**env, "TTY_COMPATIBLE": "1", "COLUMNS": "80", "NO_COLOR": "1"})
    assert table.returncode == 0, table.stderr
    assert "│" in table.stdout and "dead call(s)" in table.stdout
    assert other.message_id in table.stdout  # never folded, even at 80 columns


def test_status_watch_piped_prints_one_plain_line_per_refresh(vhost):
    done = dispatch("status", "--watch", "--iterations", "2", "--interval", "0.1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        fields = dict(field.split("=", 1) for field in line.split("\t"))
        assert fields["queue"] == os.environ["DISPATCH_QUEUE"]
        assert {"time", "ready", "unacked", "delayed", "dead", "consumers"} <= set(fields)
    assert "\x1b" not in done.stdout and "│" not in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("call", "http://127.0.0.1:9/ok"),
        ("call", "http://127.0.0.1:9/ok", "--wait"),
        ("dead", "list"),
        ("dead", "replay", "--all"),
        ("dead", "purge", "--yes"),
    ],
)
def test_broker_down_names_host_port_and_vhost_never_the_password(args):
    done = dispatch(*args, env=BROKER_DOWN)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "127.0.0.1:5999" in done.stderr and "vhost 'some-vhost'" in done.stderr
    assert "is RabbitMQ running? check DISPATCH_BROKER_URL" in done.stderr
    assert "s3cret" not in done.stderr
    assert not re.search(r"error:\s*$", done.stderr, re.MULTILINE)

    as_json = dispatch(*args, "--json", env=BROKER_DOWN)
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] and "127.0.0.1:5999" in error["message"] and "s3cret" not in as_json.stdout


def test_call_wait_with_redis_down_prints_the_id_and_exits_1(vhost):
    queue = fresh_queue()  # nobody consumes it: the call stays queued, as it would with every worker stuck
    try:
        done = dispatch("call", "http://127.0.0.1:9/ok", "--wait", env={**REDIS_DOWN, "DISPATCH_QUEUE": queue})
        assert done.returncode == 1
        (line,) = done.stdout.splitlines()
        message_id, state = line.split("\t")[:2]
        assert MESSAGE_ID.fullmatch(message_id) and state == "queued"
        assert f"queued {message_id}" in done.stderr  # told at once, before the wait began
        assert "Redis at 127.0.0.1:6999 db 4" in done.stderr and "DISPATCH_RESULTS_URL" in done.stderr
        assert "r3dispw" not in done.stderr

        as_json = dispatch(
            "call", "http://127.0.0.1:9/ok", "-n", "2", "--wait", "--json", env={**REDIS_DOWN, "DISPATCH_QUEUE": queue}
        )
        assert as_json.returncode == 1
        document = json.loads(as_json.stdout)  # one document: the calls queued, and why their outcomes are missing
        assert [c["status"] for c in document["calls"]] == ["queued", "queued"]
        assert all(MESSAGE_ID.fullmatch(c["message_id"]) for c in document["calls"])
        assert "Redis at 127.0.0.1:6999 db 4" in document["error"]["message"]
    finally:
        delete_queues(queue)


def test_result_timeout_with_no_consumer_says_no_worker_consumes_the_queue(vhost, redis_db):
    queue = fresh_queue()
    try:
        done = dispatch("call", "http://127.0.0.1:9/ok", "--wait", "--timeout", "1", env={"DISPATCH_QUEUE": queue})
        assert done.returncode == 1
        assert f"no worker is consuming queue {queue!r}" in done.stderr
        assert "dramatiq dispatch.tasks" in done.stderr

        as_json = dispatch(
            "call", "http://127.0.0.1:9/ok", "--wait", "--timeout", "1", "--json", env={"DISPATCH_QUEUE": queue}
        )
        error = json.loads(as_json.stdout)["calls"][0]["error"]
        assert error["type"] == "ResultTimeout" and "no outcome after 1s; no worker is consuming" in error["message"]
    finally:
        delete_queues(queue)


def test_call_without_wait_prints_ids_piped_one_per_line(vhost):
    queue = fresh_queue()
    try:
        done = dispatch(
            "call", "http://127.0.0.1:9/ok", "http://127.0.0.1:9/other", "-n", "2", env={"DISPATCH_QUEUE": queue}
        )
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.splitlines()) == 4
        assert all(MESSAGE_ID.fullmatch(line) for line in done.stdout.splitlines())
    finally:
        delete_queues(queue)

"""The ``dispatch`` command, run as a user runs it: a real subprocess against the real services.

The subprocesses inherit this process's environment, which conftest.py points
at the test vhost, queue and Redis database -- so a call sent by the CLI is
performed by the session ``worker`` and its outcome read back by the CLI.
Tests that need calls to stay queued give the CLI a fresh ``DISPATCH_QUEUE``
that no worker consumes.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import uuid

import pika
import pika.exceptions
import pytest
import requests

from .support import QUEUE, ROOT, TEST_ENV, delete_queues, dispatch, free_port, send_to, unique_key, wait_for

pytestmark = pytest.mark.integration


def fresh_queue() -> str:
    """A queue of the test run's own (its name starts with the run's) that no worker consumes."""
    return f"{QUEUE}-cli-{uuid.uuid4().hex[:8]}"


def queue_exists(name: str) -> bool:
    """Ask RabbitMQ itself (not the lagging management stats) whether ``name`` was ever declared."""
    connection = pika.BlockingConnection(pika.URLParameters(TEST_ENV["DISPATCH_BROKER_URL"]))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


# --- dispatch call ------------------------------------------------------------------------------


def test_call_wait_prints_the_result(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/multiply"), "x=6", "y=7", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_call_without_wait_prints_one_message_id_per_call_and_the_calls_happen(worker, python_endpoint):
    key = unique_key()
    done = dispatch("call", python_endpoint.url("/health"), f"key={key}", "--count", "3")
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 3 and len(set(ids)) == 3 and all(len(i) == 36 for i in ids)
    wait_for(lambda: python_endpoint.hits(key) == 3, 30, "the three calls to reach the endpoint")


def test_call_json_gives_ids_and_results_for_many_calls(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/multiply"), "x=2", "y=3", "--count", "3", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout)["calls"]
    assert [(c["status"], c["result"], c["method"]) for c in calls] == [("success", 6, "GET")] * 3
    assert len({c["message_id"] for c in calls}) == 3


def test_call_post_sends_repeated_keys_as_a_list_in_the_form(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/echo?q=1"), "a=1", "a=2", "b=x=y", "-X", "post", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)["calls"][0]["result"]
    assert seen["method"] == "POST"
    assert seen["form"] == {"a": ["1", "2"], "b": "x=y"}
    assert seen["query"] == {"q": "1"}


def test_a_failed_call_exits_non_zero_naming_the_error_class(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/fail"), "reason=division by zero", "--wait")
    assert done.returncode == 1
    assert "RemoteExecuteError: division by zero" in done.stderr
    assert done.stdout == ""


def test_json_reports_each_calls_own_outcome_and_exits_non_zero_if_any_failed(worker, python_endpoint):
    done = dispatch(
        "call", python_endpoint.url("/multiply"), python_endpoint.url("/unknown"), "x=4", "y=5", "--wait", "--json"
    )
    assert done.returncode == 1
    ok, failed = json.loads(done.stdout)["calls"]
    assert ok["status"] == "success" and ok["result"] == 20
    assert failed["status"] == "failure"
    assert failed["error"] == {"type": "UnknownStatusError", "message": "unknown status 'maybe'"}


def test_many_calls_with_wait_piped_print_one_tab_separated_line_per_call(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/multiply"), python_endpoint.url("/fail"), "x=3", "y=3", "--wait")
    assert done.returncode == 1
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [row[1:3] for row in rows] == [["success", "GET"], ["failure", "GET"]]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", row[0]) for row in rows)
    assert [row[4] for row in rows] == ["9", "RemoteExecuteError: it broke"]
    assert "│" not in done.stdout and "\x1b" not in done.stdout


def test_many_calls_with_wait_on_a_terminal_show_a_table_of_outcomes(worker, python_endpoint):
    terminal = {"TTY_COMPATIBLE": "1", "COLUMNS": "100", "NO_COLOR": "1"}
    args = ("call", python_endpoint.url("/multiply"), python_endpoint.url("/fail"), "x=3", "y=3", "--wait")
    done = dispatch(*args, env=terminal)
    assert done.returncode == 1
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in done.stdout.splitlines() if "│" in line]
    assert len([row for row in cells if re.fullmatch(r"[0-9a-f-]{36}", row[0])]) == 2
    outcomes = [row[1] for row in cells]
    assert "9" in outcomes and "RemoteExecuteError: it broke" in outcomes


def test_wait_gives_up_after_timeout_with_result_timeout(worker, python_endpoint):
    done = dispatch("call", python_endpoint.url("/slow"), "ms=5000", "--wait", "--timeout", "1", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["calls"][0]["error"]["type"] == "ResultTimeout"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["http://127.0.0.1:9/ok", "ftp://127.0.0.1/file"], "not an absolute http:// or https:// URL"),
        (["http://127.0.0.1:9/ok", "novalue"], "'novalue' is neither a URL"),
        (["http://127.0.0.1:9/ok", "=value"], "'=value' is neither a URL"),
        (["x=1"], "no URL given"),
        (["http://127.0.0.1:99999/ok"], "malformed"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(vhost, args, complaint):
    queue = fresh_queue()
    done = dispatch("call", *args, env={"DISPATCH_QUEUE": queue})
    assert done.returncode == 2
    assert complaint in done.stderr
    assert done.stdout == ""
    assert not queue_exists(queue)


def test_bad_input_with_json_is_a_json_error(vhost):
    done = dispatch("call", "http://127.0.0.1:9/ok", "oops", "--json")
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "ValueError" and "'oops'" in error["message"]


def test_unknown_method_is_a_usage_error(vhost):
    done = dispatch("call", "http://127.0.0.1:9/ok", "--method", "TRACE")
    assert done.returncode == 2
    assert "TRACE" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-H", "X-Tenant acme"], "is not 'Name: value'"),
        (["-H", "Host: evil"], "'Host' is set by the worker"),
        (["--body", "xml"], "xml"),
    ],
)
def test_a_bad_header_or_body_is_a_usage_error_and_sends_nothing(vhost, args, message):
    done = dispatch("call", "http://127.0.0.1:9/ok", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr


def test_call_with_headers_and_a_json_body_reaches_the_node_endpoint(worker, node_endpoint):
    done = dispatch(
        "call", node_endpoint.url("/echo"), "a=1", "-X", "patch", "-H", "X-Tenant: acme", "--body", "json", "--wait"
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["method"], seen["headers"]["x-tenant"], seen["json"]) == ("PATCH", "acme", {"a": "1"})


# --- dispatch status ----------------------------------------------------------------------------


def test_status_counts_ready_delayed_and_dead_calls(vhost):
    queue = fresh_queue()
    env = {"DISPATCH_QUEUE": queue}
    try:
        sent = dispatch("call", "http://127.0.0.1:9/nobody-consumes-this", "--count", "3", env=env)
        assert sent.returncode == 0, sent.stderr
        connection = pika.BlockingConnection(pika.URLParameters(TEST_ENV["DISPATCH_BROKER_URL"]))
        channel = connection.channel()
        channel.basic_publish("", f"{queue}.DQ", b"{}")
        for _ in range(2):
            channel.basic_publish("", f"{queue}.XQ", b"{}")
        connection.close()

        def status() -> dict | None:
            done = dispatch("status", "--json", env=env)
            assert done.returncode == 0, done.stderr
            current = json.loads(done.stdout)
            return current if (current["ready"], current["delayed"], current["dead"]) == (3, 1, 2) else None

        # RabbitMQ refreshes the management API's numbers every few seconds.
        current = wait_for(status, 60, "status to show 3 ready, 1 delayed, 2 dead", interval=1)
        assert current["vhost"] == TEST_ENV["DISPATCH_BROKER_URL"].rsplit("/", 1)[1]
        assert current["queue"] == queue
        assert current["unacked"] == 0 and current["consumers"] == 0
        assert [q["name"] for q in current["queues"]] == [queue, f"{queue}.DQ", f"{queue}.XQ"]
        assert all(q["exists"] for q in current["queues"])

        table = dispatch("status", env={**env, "TTY_COMPATIBLE": "1", "COLUMNS": "100"})
        assert table.returncode == 0, table.stderr
        assert queue in table.stdout and "dead (.XQ)" in table.stdout

        line = dispatch("status", env=env)
        assert line.returncode == 0, line.stderr
        fields = dict(field.split("=", 1) for field in line.stdout.rstrip("\n").split("\t"))
        assert (fields["queue"], fields["ready"], fields["delayed"], fields["dead"]) == (queue, "3", "1", "2")
    finally:
        delete_queues(queue)


def test_status_of_queues_not_declared_yet_is_all_zero(vhost):
    done = dispatch("status", "--json", env={"DISPATCH_QUEUE": fresh_queue()})
    assert done.returncode == 0, done.stderr
    current = json.loads(done.stdout)
    assert (current["ready"], current["delayed"], current["dead"]) == (0, 0, 0)
    assert not any(q["exists"] for q in current["queues"])


def test_status_watch_json_prints_one_line_per_refresh(vhost):
    done = dispatch("status", "--watch", "--json", "--iterations", "2", "--interval", "0.1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(json.loads(line)["queue"] == TEST_ENV["DISPATCH_QUEUE"] for line in lines)


def test_status_says_clearly_when_credentials_are_rejected(vhost):
    done = dispatch("status", env={"DISPATCH_MANAGEMENT_URL": "http://guest:wrong@127.0.0.1:15672"})
    assert done.returncode == 1
    assert "rejected the credentials" in done.stderr


def test_status_of_a_broker_that_cannot_be_reached_fails_instead_of_describing_another(vhost):
    # No DISPATCH_MANAGEMENT_URL: the API is looked for on the broker's host (127.0.0.1:15672 answers
    # there), but the broker itself is not on this port, so nothing may be described as its queues.
    assert "DISPATCH_MANAGEMENT_URL" not in os.environ
    port = free_port()
    env = {"DISPATCH_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F"}
    done = dispatch("status", env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert f"cannot reach RabbitMQ at 127.0.0.1:{port}" in done.stderr and "DISPATCH_BROKER_URL" in done.stderr
    as_json = dispatch("status", "--json", env=env)
    assert as_json.returncode == 1
    assert list(json.loads(as_json.stdout)) == ["error"]


def test_status_refuses_a_management_api_of_another_rabbitmq(vhost):
    # A management API answering for a cluster other than the one DISPATCH_BROKER_URL reaches.
    class OtherRabbitMQ(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {"cluster_name": "rabbit@elsewhere"} if self.path == "/api/overview" else {"messages_ready": 7}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherRabbitMQ)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://guest:s3cret-pw@127.0.0.1:{server.server_port}"
        done = dispatch("status", "--json", env={"DISPATCH_MANAGEMENT_URL": url})
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["type"] == "ManagementError"
    assert "'rabbit@elsewhere'" in error["message"] and "DISPATCH_MANAGEMENT_URL" in error["message"]
    assert "s3cret-pw" not in done.stdout + done.stderr


# --- dispatch hosts -----------------------------------------------------------------------------


def test_hosts_shows_limits_without_the_credentials_of_the_destinations_file(redis_db, tmp_path):
    # The operator's shell has none of the workers' secrets; the limits are all `hosts` needs.
    host = f"api-{unique_key()}.example"
    destinations = tmp_path / "destinations.toml"
    destinations.write_text(
        f'[destinations."{host}"]\n'
        'headers = { Authorization = "Bearer ${ECHO_TOKEN_NOT_SET}" }\n'
        'signing_secret = "${ECHO_SECRET_NOT_SET}"\n'
        'max_concurrency = 4\nrate = "50/s"\n'
    )
    done = dispatch("hosts", "--json", env={"DISPATCH_DESTINATIONS": str(destinations)})
    assert done.returncode == 0, done.stderr
    listed = next(state for state in json.loads(done.stdout) if state["host"] == host)
    assert (listed["max_concurrency"], listed["rate"], listed["in_flight"]) == (4, "50/s", 0)
    # A mistake in the limits is still reported, with its file and line.
    destinations.write_text(f'[destinations."{host}"]\nrate = "fast"\n')
    bad = dispatch("hosts", env={"DISPATCH_DESTINATIONS": str(destinations)})
    assert bad.returncode == 2 and f"{destinations} line 2: rate" in bad.stderr


def test_hosts_without_a_destinations_file_shows_the_hosts_with_live_state(redis_db):
    import redis

    host = f"{QUEUE}-{unique_key()}.example:443"  # a key of this run's own: the redis_db fixture removes it
    client = redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"])
    client.set(f"dispatch:flow:{host}:in-flight", 2, ex=60)
    try:
        done = dispatch("hosts", "--json", env={"DISPATCH_DESTINATIONS": ""})
        assert done.returncode == 0, done.stderr
        assert {
            "host": host,
            "max_concurrency": None,
            "rate": None,
            "in_flight": 2,
            "breaker": "off",
            "failures": 0,
            "holders": [],  # a counter from before leases: a count, no holders known
            "probe": None,
        } in (json.loads(done.stdout))
        plain = dispatch("hosts", env={"DISPATCH_DESTINATIONS": ""})
        assert plain.returncode == 0 and f"{host}\t-\t-\t2\toff\t0" in plain.stdout.splitlines()
        assert "DISPATCH_DESTINATIONS" in plain.stderr  # says where limits would come from
    finally:
        client.delete(f"dispatch:flow:{host}:in-flight")


# --- dispatch worker and gateway ----------------------------------------------------------------


def test_worker_performs_calls(vhost, redis_db, python_endpoint, tmp_path):
    queue = fresh_queue()
    with open(tmp_path / "worker.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatch.cli", "worker", "--processes", "1", "--threads", "2"],
            env={**os.environ, "DISPATCH_QUEUE": queue},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            handle = send_to(queue, python_endpoint.url("/multiply"), params={"x": 7, "y": 6})
            assert handle.get(timeout=60) == 42, (tmp_path / "worker.log").read_text()
        finally:
            process.terminate()
            assert process.wait(30) == 0
            delete_queues(queue)


def test_gateway_starts_and_refuses_to_without_a_token(vhost):
    pytest.importorskip("uvicorn", reason="the gateway extra is not installed")
    refused = dispatch("gateway", "--json", env={"DISPATCH_GATEWAY_TOKEN": ""})
    assert refused.returncode == 2
    assert "DISPATCH_GATEWAY_TOKEN" in json.loads(refused.stdout)["error"]["message"]

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatch.cli", "gateway", "--port", str(port)],
        env={**os.environ, "DISPATCH_GATEWAY_TOKEN": unique_key()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:

        def answers() -> bool:
            assert process.poll() is None, "the gateway exited"
            try:
                return requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(answers, 30, "the gateway to answer", interval=0.2)
    finally:
        process.terminate()
        process.wait(30)

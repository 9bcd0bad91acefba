"""``dispatch result``, ``cancel`` and ``call --delay`` where no service is needed: help and bad input.

Bad input exits 2 before the broker or Redis is touched, so these run with
both pointed at ports where nothing listens.  The commands against the real
services are in tests/integration/test_cli_later.py.
"""

from __future__ import annotations

import json

import pytest

from dispatch.cli.output import Output, plain_line, result_outcome
from tests.support import dispatch, free_port

NOWHERE = {
    "DISPATCH_BROKER_URL": f"amqp://127.0.0.1:{free_port()}/nowhere",
    "DISPATCH_RESULTS_URL": f"redis://127.0.0.1:{free_port()}/0",
}


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("result", ["--wait", "SECONDS", "scheduled", "cancelled", "pending", "ResultTimeout", "--json"]),
        ("cancel", ["not_cancelled", "already started or finished", "--json"]),
        ("call", ["--delay", "30 days", "--timeout"]),
    ],
)
def test_help_states_the_contract(command, mentions):
    done = dispatch(command, "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for mention in mentions:
        assert mention in text, mention


@pytest.mark.parametrize("command", ["result", "cancel"])
def test_an_id_that_is_not_a_uuid_exits_2(command):
    done = dispatch(command, "7c0e9a1e", env=NOWHERE)
    assert (done.returncode, done.stdout) == (2, "")
    assert "'7c0e9a1e' is not a call id" in done.stderr
    as_json = dispatch(command, "7c0e9a1e", "--json", env=NOWHERE)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["type"] == "Error"


@pytest.mark.parametrize("delay", ["-0.5", "2592000.5", "inf", "nan"])
def test_a_delay_out_of_range_exits_2_before_anything_is_sent(delay):
    done = dispatch("call", "http://127.0.0.1:9/ok", "--delay", delay, "--json", env=NOWHERE)
    assert done.returncode == 2
    assert "--delay takes 0 to 2592000 seconds" in json.loads(done.stdout)["error"]["message"]


def test_a_wait_shorter_than_the_delay_exits_2():
    done = dispatch("call", "http://127.0.0.1:9/ok", "--delay", "60", "--wait", env=NOWHERE)  # --timeout 60
    assert done.returncode == 2
    assert "longer than the delay" in " ".join(done.stderr.split())


def test_result_with_redis_unreachable_exits_1_naming_it():
    done = dispatch("result", "7c0e9a1e-3b5f-4c1d-9a57-0e5f1c2d3b4a", "--json", env=NOWHERE)
    assert done.returncode == 1
    assert "DISPATCH_RESULTS_URL" in json.loads(done.stdout)["error"]["message"]


def test_result_line_fields(capsys, monkeypatch):
    from dispatch.cli.output import print_result

    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    output = Output(as_json=False)
    print_result(output, {"id": "i", "state": "success", "result": {"a": 1}})
    print_result(output, {"id": "i", "state": "failure", "error": {"type": "E", "message": "two\nlines"}})
    print_result(output, {"id": "i", "state": "pending", "error": {"type": "ResultTimeout", "message": "m"}})
    assert capsys.readouterr().out.splitlines() == [
        plain_line("i", "success", '{"a": 1}'),
        "i\tfailure\tE: two lines",
        "i\tpending\t-",
    ]
    assert result_outcome({"id": "i", "state": "started"}) == ""

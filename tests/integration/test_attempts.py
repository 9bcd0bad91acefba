"""Every attempt on record, through a real worker: ``res.attempts()``, ``CallResult.from_id``, the CLI, the gateway,
and the stub worker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from dispatch import URL, TransportError
from dispatch.result import CallResult
from dispatch.testing import stub_worker

from .support import dispatch, free_port, unique_key
from .test_gateway import Gateway

pytestmark = pytest.mark.integration

AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    process = Gateway(tmp_path_factory.mktemp("attempts-gateway") / "gateway.log")
    yield process
    process.stop()


def check_503_then_200(attempts: list[dict]) -> None:
    first, second = attempts
    assert (first["attempt"], first["status_code"], first["error"]) == (1, 503, "TransportError")
    assert "503" in first["detail"]
    assert (second["attempt"], second["status_code"], second["error"], second["detail"]) == (2, 200, None, "")
    for attempt in attempts:
        assert AT.match(attempt["at"]) and attempt["duration_ms"] >= 0
        assert set(attempt) == {"attempt", "at", "duration_ms", "status_code", "error", "detail"}


def test_a_503_then_a_200_are_on_record_everywhere(worker, node_endpoint, gateway):
    res = URL(node_endpoint.url("/flaky")).send(key=unique_key(), fail=1)
    assert res.get(timeout=30) == 2
    attempts = res.attempts()
    check_503_then_200(attempts)
    assert CallResult.from_id(res.message_id).attempts() == attempts  # from the id alone, as any process reads it

    shown = dispatch("attempts", res.message_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"id": res.message_id, "attempts": attempts}
    piped = dispatch("attempts", res.message_id)
    assert piped.returncode == 0, piped.stderr
    lines = [line.split("\t") for line in piped.stdout.splitlines()]
    assert [(line[0], line[3], line[4]) for line in lines] == [("1", "503", "TransportError"), ("2", "200", "-")]

    answer = gateway.get(f"/calls/{res.message_id}/attempts")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": res.message_id, "attempts": attempts}
    assert gateway.get(f"/calls/{res.message_id}/attempts", token=None).status_code == 401
    assert gateway.get(f"/calls/{unique_key()[:8]}-0000-4000-8000-000000000000/attempts").status_code == 404
    assert "getCallAttempts" in gateway.get("/openapi.json").text


def test_a_refused_connection_has_no_status(worker):
    res = URL(f"http://127.0.0.1:{free_port()}/nothing", max_attempts=1).send()
    with pytest.raises(TransportError):
        res.get(timeout=30)
    (attempt,) = res.attempts()
    assert (attempt["attempt"], attempt["status_code"], attempt["error"]) == (1, None, "TransportError")
    assert dispatch("attempts", res.message_id).stdout.split("\t")[3] == "-"


def test_the_stub_worker_keeps_attempts_too(node_endpoint):
    with stub_worker():
        res = URL(node_endpoint.url("/flaky")).send(key=unique_key(), fail=1)
        assert res.get(timeout=30) == 2
        check_503_then_200(res.attempts())


def test_an_unknown_or_unattempted_call_has_none(redis_db):
    call_id = "00000000-0000-4000-8000-000000000000"
    shown = dispatch("attempts", call_id, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout) == {"id": call_id, "attempts": []}
    assert dispatch("attempts", "not-an-id").returncode == 2

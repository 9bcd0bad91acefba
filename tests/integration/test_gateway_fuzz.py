"""schemathesis, every check (``--checks all``), against a real gateway process: no failure, one known warning.

The gateway serves its own OpenAPI document; schemathesis reads it and sends what it
describes (its examples, boundary values, random bodies, schema-violating ones, and
sequences following its links: queue, then read and cancel) with a valid token, so
the real handlers answer, on a real RabbitMQ and Redis.  The run is bounded (a dozen
cases per operation and phase, about 20 s here) and seeded, with no example database:
the same run each time.  It checks every operation the document lists, however many.

Safety: generated URLs must never become requests.  The gateway's queue is one no
worker consumes, deleted afterwards; ``DISPATCH_ALLOWED_HOSTS`` opens only 127.0.0.1,
so that the document's example (docs/gateway.md's receiver) is queued -- nothing ever
sends it.

What the document cannot say: a body may fit the schema and still be refused, 422,
for a fact outside its shape -- a host name that does not resolve (offline, any
name), a header name the worker owns, arguments that do not fit the actor's
signature, a message over ``DISPATCH_MAX_MESSAGE_BYTES``.  So for the two ``POST``
operations, ``positive_data_acceptance`` also expects 422 -- and, unlike
schemathesis' default, no 5xx; every other check is as schemathesis defines it.
That 422 is also the one warning the run prints, and the only one it may: a
"Schema validation mismatch" for exactly the two ``POST`` operations (most
generated bodies name a host that does not resolve).

The console (``/console/``) is not in the document (a mounted app of HTML pages and
forms, tested in a browser), so it is not fuzzed here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .support import TEST_ENV, delete_queues
from .test_gateway import TOKEN, Gateway

pytestmark = pytest.mark.integration

ACTORS = "tests.integration.gateway_actors"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 12  # per operation and phase

CONFIG = f"""
seed = 20
workers = 1

[generation]
max-examples = {EXAMPLES}
database = "none"

[warnings]
fail-on = ["missing_auth", "missing_test_data", "method_not_allowed"]

[auth.openapi.HTTPBearer]
bearer = "{TOKEN}"

[[operations]]
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
"""


@pytest.fixture(scope="module")
def fuzz_gateway(vhost, redis_db, tmp_path_factory) -> Iterator[Gateway]:
    queue = f"{TEST_ENV['DISPATCH_QUEUE']}-fuzz-{uuid.uuid4().hex[:8]}"
    process = Gateway(
        tmp_path_factory.mktemp("fuzz-gateway") / "gateway.log",
        DISPATCH_QUEUE=queue,
        DISPATCH_ALLOWED_HOSTS="127.0.0.1",
        DISPATCH_GATEWAY_ACTORS=f"{ACTORS}:add,{ACTORS}:divide",  # on <queue>-tasks: no worker either
    )
    yield process
    process.stop()
    delete_queues(queue)
    delete_queues(f"{queue}-tasks")


def schemathesis(base: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``schemathesis run --checks all`` on the gateway's document, with :data:`CONFIG`; the run and its seconds."""
    config = cwd / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"]
    command += [f"{base}/openapi.json", "--checks", "all", "--request-timeout", "20", "--no-color"]
    started = time.monotonic()
    # cwd: reports and caches stay out of the repository.
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    return out, time.monotonic() - started


def test_schemathesis_finds_nothing_with_every_check(fuzz_gateway, tmp_path):
    out, seconds = schemathesis(fuzz_gateway.base, tmp_path)
    report = out.stdout[-8000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    document = requests.get(f"{fuzz_gateway.base}/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert f"Selected: {operations}/{operations}" in out.stdout and f"Tested: {operations}" in out.stdout, report
    generated = re.search(r"(\d+) generated, \1 passed", out.stdout)
    assert generated and int(generated[1]) >= operations * EXAMPLES, report
    warnings = re.findall(r"⚠️ ([^:\n]+)", out.stdout.partition("Warnings:")[2])
    assert set(warnings) <= {"Schema validation mismatch"}, report
    if warnings:  # the 422s the document cannot state: most generated hosts do not resolve
        listed = re.search(r"Schema validation mismatch: .*\n\n((?:  - .+\n)+)", out.stdout)
        posts = {"  - POST /calls", "  - POST /tasks/{actor_name}"}
        assert listed and set(listed[1].splitlines()) <= posts, report
    print(f"\nschemathesis: {generated[1]} cases in {seconds:.0f} s, warnings: {warnings or 'none'}")
    assert seconds < 60, f"schemathesis took {seconds:.0f} s\n{report}"


# -- what schemathesis found before, each on its own ----------------------------------------------------


def test_a_405_allows_every_method_the_path_takes(fuzz_gateway):
    response = requests.put(f"{fuzz_gateway.base}/calls/{uuid.uuid4()}", headers=AUTHORIZED, timeout=10)
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == "DELETE, GET"  # both documented; Starlette named only the first route's
    assert requests.get(f"{fuzz_gateway.base}/calls", headers=AUTHORIZED, timeout=10).headers["Allow"] == "POST"


@pytest.mark.parametrize(("path", "operation"), [("/calls", "/calls"), ("/tasks/add", "/tasks/{actor_name}")])
def test_a_body_that_is_not_utf8_is_a_documented_400(fuzz_gateway, path, operation):
    headers = {**AUTHORIZED, "Content-Type": "application/json"}
    response = requests.post(fuzz_gateway.base + path, data=b'{"args": ["\xff"]}', headers=headers, timeout=10)
    assert response.status_code == 400, response.text
    document = requests.get(f"{fuzz_gateway.base}/openapi.json", timeout=10).json()
    assert "400" in document["paths"][operation]["post"]["responses"]


def test_the_documents_example_call_is_queued(fuzz_gateway):
    document = requests.get(f"{fuzz_gateway.base}/openapi.json", timeout=10).json()
    fields = document["components"]["schemas"]["NewCall"]["properties"]
    example = {name: field["examples"][0] for name, field in fields.items() if "examples" in field}
    assert example["url"] == "http://127.0.0.1:8000/multiply"  # docs/gateway.md's receiver: no DNS needed
    response = requests.post(f"{fuzz_gateway.base}/calls", json=example, headers=AUTHORIZED, timeout=10)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("field", ["options", "headers"])
def test_null_where_the_document_says_an_object_is_422(fuzz_gateway, field):
    body = {"url": "http://127.0.0.1:8000/multiply", field: None}
    response = requests.post(f"{fuzz_gateway.base}/calls", json=body, headers=AUTHORIZED, timeout=10)
    assert response.status_code == 422, response.text
    assert f"{field} must be an object, not NoneType" in response.text

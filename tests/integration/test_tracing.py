"""Traces from the sender to a real worker process to the Node endpoint (tests/unit/test_tracing.py has the details).

The sender is this test process, with OpenTelemetry's SDK and its in-memory
exporter; the worker is ``dramatiq dispatch.tasks tests.integration.traced_app``,
which records its spans to a file; the Node endpoint echoes the
``traceparent`` header it received.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace

from dispatch import URL

from .support import IsolatedWorker, delete_queues, wait_for

pytestmark = pytest.mark.integration


def traceparent_ids(headers: dict) -> tuple[int, int]:
    _version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    return int(trace_id, 16), int(span_id, 16)


@pytest.fixture
def traced_worker(vhost, redis_db, node_endpoint, tmp_path):
    spans_file = tmp_path / "worker-spans.jsonl"
    spans_file.touch()
    worker = IsolatedWorker(
        tmp_path / "worker.log",
        {"TRACED_APP_SPANS": str(spans_file)},
        modules=["dispatch.tasks", "tests.integration.traced_app"],
        threads=2,
    )
    worker.spans_file = spans_file
    yield worker.ready(node_endpoint)
    worker.stop()
    delete_queues(worker.queue)


def test_the_senders_trace_reaches_the_node_endpoint_through_the_workers_spans(spans, traced_worker, node_endpoint):
    with trace.get_tracer("shop").start_as_current_span("checkout") as checkout:
        handle = traced_worker.send(node_endpoint.url("/echo"), "POST", {"order": "7"})
    seen = handle.get(timeout=60)
    sender = checkout.get_span_context()
    trace_id, parent_id = traceparent_ids(seen["headers"])
    assert trace_id == sender.trace_id
    assert [span.name for span in spans.get_finished_spans()] == ["checkout"]  # the sender records its own only

    def call_and_attempt() -> dict | None:
        recorded = [json.loads(line) for line in traced_worker.spans_file.read_text().splitlines()]
        ours = {span["kind"]: span for span in recorded if int(span["context"]["trace_id"], 16) == sender.trace_id}
        return ours if {"SpanKind.CONSUMER", "SpanKind.CLIENT"} <= ours.keys() else None

    ours = wait_for(call_and_attempt, 30, "the worker to record the call's spans")
    call, attempt = ours["SpanKind.CONSUMER"], ours["SpanKind.CLIENT"]
    assert int(call["parent_id"], 16) == sender.span_id
    assert call["attributes"]["dispatch.outcome"] == "success"
    assert call["attributes"]["messaging.destination.name"] == traced_worker.queue
    assert attempt["parent_id"] == call["context"]["span_id"]
    assert int(attempt["context"]["span_id"], 16) == parent_id  # the endpoint was told the attempt's span
    assert attempt["attributes"]["http.request.method"] == "POST"
    assert attempt["attributes"]["http.response.status_code"] == 200


def test_a_worker_without_an_sdk_still_passes_the_senders_trace_on(spans, worker, node_endpoint):
    with trace.get_tracer("shop").start_as_current_span("checkout") as checkout:
        seen = URL(node_endpoint.url("/echo")).send().get(timeout=60)
    sender = checkout.get_span_context()
    # Its spans are not recorded, so they keep the sender's ids: the endpoint joins the sender's span.
    assert traceparent_ids(seen["headers"]) == (sender.trace_id, sender.span_id)

"""Traces through the in-process stub worker: the caller's span, a span per delivery, a span per attempt.

The endpoint is a real HTTP server in a thread that answers with the headers
it saw, so the ``traceparent`` checked is the one that went over the wire.
The same path against RabbitMQ, a real worker process and the Node endpoint
is tests/integration/test_tracing.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from dispatch import URL, TransportError
from dispatch.testing import stub_worker
from dispatch.tracing import OPTION


def traceparent_ids(headers: dict) -> tuple[int, int]:
    """(trace id, parent span id) of a W3C ``traceparent`` header."""
    _version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    return int(trace_id, 16), int(span_id, 16)


def finished(spans, kind: SpanKind) -> list:
    return [span for span in spans.get_finished_spans() if span.kind is kind]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_callers_trace_reaches_the_endpoint_through_a_call_span_and_an_attempt_span(spans, server):
    with stub_worker() as broker:
        with trace.get_tracer("shop").start_as_current_span("checkout") as checkout:
            handle = URL(f"{server.base}/charge").send(amount=5)
        assert handle.options[OPTION]["traceparent"]  # carried in the message, for any worker
        seen = handle.get(timeout=10)
        broker.join(handle.queue_name, fail_fast=False)  # the call span ends after the outcome is stored
    caller = checkout.get_span_context()
    [call] = finished(spans, SpanKind.CONSUMER)
    [attempt] = finished(spans, SpanKind.CLIENT)
    trace_id, parent_id = traceparent_ids(seen["headers"])
    assert trace_id == caller.trace_id == call.context.trace_id == attempt.context.trace_id
    assert call.parent.span_id == caller.span_id
    assert attempt.parent.span_id == call.context.span_id
    assert parent_id == attempt.context.span_id  # the endpoint's spans nest under the attempt
    host = server.base.removeprefix("http://")
    assert call.name == f"http_dispatch {host}"
    assert call.attributes["server.address"] == host
    assert call.attributes["dispatch.outcome"] == "success"
    assert call.attributes["dispatch.attempts"] == 1
    assert call.attributes["dispatch.retries"] == 0
    assert call.attributes["messaging.message.id"] == handle.message_id
    assert attempt.name == "GET"
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["url.full"] == f"{server.base}/charge"  # no query: parameters are data
    assert attempt.status.status_code is StatusCode.UNSET


def test_failed_attempts_and_a_failed_call_are_errors_on_their_spans(spans):
    url = f"http://127.0.0.1:{closed_port()}/down"
    with stub_worker() as broker:
        with trace.get_tracer("shop").start_as_current_span("checkout"):
            handle = URL(url, max_attempts=2, retry_schedule=[]).send()
        with pytest.raises(TransportError):
            handle.get(timeout=30)
        broker.join(handle.queue_name, fail_fast=False)
    [call] = finished(spans, SpanKind.CONSUMER)
    attempts = finished(spans, SpanKind.CLIENT)
    assert [a.attributes["dispatch.attempt"] for a in attempts] == [1, 2]
    assert all(a.attributes["error.type"] == "AttemptFailed" for a in attempts)
    assert all(a.status.status_code is StatusCode.ERROR for a in attempts)
    assert call.attributes["dispatch.outcome"] == "TransportError"
    assert call.attributes["dispatch.attempts"] == 2
    assert call.status.status_code is StatusCode.ERROR


def test_every_delivery_of_a_call_joins_the_senders_trace(spans, server):
    url = f"http://127.0.0.1:{closed_port()}/down"
    with stub_worker() as broker:
        with trace.get_tracer("shop").start_as_current_span("checkout") as checkout:
            handle = URL(url, max_attempts=1, retry_schedule=[0.1]).send()
        with pytest.raises(TransportError):
            handle.get(timeout=30)
        broker.join(handle.queue_name, fail_fast=False)
    first, second = sorted(finished(spans, SpanKind.CONSUMER), key=lambda span: span.start_time)
    assert first.parent.span_id == second.parent.span_id == checkout.get_span_context().span_id
    assert (first.attributes["dispatch.retries"], first.attributes["dispatch.outcome"]) == (0, "retry_scheduled")
    assert first.status.status_code is StatusCode.UNSET  # not failed yet: a delivery is scheduled
    assert (second.attributes["dispatch.retries"], second.attributes["dispatch.outcome"]) == (1, "TransportError")


def test_without_a_current_span_the_worker_starts_the_trace(spans, server):
    with stub_worker() as broker:
        handle = URL(f"{server.base}/alone").send()
        assert OPTION not in handle.options
        seen = handle.get(timeout=10)
        broker.join(handle.queue_name, fail_fast=False)
    [call] = finished(spans, SpanKind.CONSUMER)
    assert call.parent is None
    assert traceparent_ids(seen["headers"])[0] == call.context.trace_id


def test_without_opentelemetry_installed_nothing_is_traced_and_calls_work(server):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        from dispatch import URL, tracing
        from dispatch.testing import stub_worker
        assert not tracing.enabled()
        with stub_worker() as broker:
            assert not any(type(m).__name__ == "Tracing" for m in broker.middleware)
            handle = URL("{server.base}/untraced").send()
            assert tracing.OPTION not in handle.options
            seen = handle.get(timeout=10)
        assert "traceparent" not in seen["headers"], seen["headers"]
        print("untraced ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "untraced ok" in result.stdout

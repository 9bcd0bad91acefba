"""What every test may use: OpenTelemetry's SDK recording spans in memory, as an application sets it up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

_exporter = None


@pytest.fixture
def spans() -> Iterator:
    """The in-memory exporter of this process's tracer provider (installed once: OpenTelemetry allows one).

    Emptied for each test; ``spans.get_finished_spans()`` lists what ended since.
    """
    global _exporter
    if _exporter is None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    yield _exporter

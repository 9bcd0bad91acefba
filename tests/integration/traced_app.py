"""A worker's tracing set-up, as an application writes it: OpenTelemetry's SDK, spans to a file.

Its worker runs ``dramatiq dispatch.tasks tests.integration.traced_app`` with
``TRACED_APP_SPANS`` naming the file; each finished span is one JSON line.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

provider = TracerProvider()
provider.add_span_processor(
    SimpleSpanProcessor(
        ConsoleSpanExporter(
            out=open(os.environ["TRACED_APP_SPANS"], "a", buffering=1),  # noqa: SIM115 -- open while the worker runs
            formatter=lambda span: span.to_json(indent=None) + "\n",
        )
    )
)
trace.set_tracer_provider(provider)

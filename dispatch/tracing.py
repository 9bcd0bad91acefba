"""Traces: the caller's trace carried to the worker and on to the endpoint (OpenTelemetry).

With the ``otel`` extra installed (``pip install 'dispatch[otel]'``, which is
opentelemetry-api), a call belongs to the trace of the code that sent it:

1. **The caller.**  ``send()``, ``send_in()``, ``URL.map`` and the gateway
   put the current span's W3C trace context (``traceparent``, ``tracestate``,
   baggage) into the message's options, under :data:`OPTION`.  Without a
   current span nothing is added.
2. **The worker.**  :class:`Tracing` (a middleware) opens a *call span* for
   each delivery of a call, a child of the caller's span: host, method,
   queue, which delivery it is (``dispatch.retries``), how many attempts it
   made, and its outcome.  A call that waits for its host (flow control) or
   was cancelled ends its span with that outcome.
3. **Each attempt** is a client span under the call span
   (:class:`AttemptSpans`, the transport's attempt observer): method, host,
   port, URL without its query, the answer's status, and the error it ended with.
4. **The endpoint** receives ``traceparent`` naming the attempt's span, so
   its own spans join the same trace.

Why it is shaped this way: the trace context travels in the message, not
in a thread or a header of the AMQP frame, because a call may be delivered
hours later by another process (a scheduled retry, a wait for its host),
and every delivery must still join the sender's trace.  The attempt spans
are made here rather than by the urllib3 instrumentation because one
attempt is more than one urllib3 request (redirects, the whole-attempt
deadline) and its outcome is ours to name; with that instrumentation on,
its spans nest under ours.

Nothing here configures OpenTelemetry's SDK (exporters, sampling): that is
the application's, as OpenTelemetry asks of libraries; without one, spans
are not recorded but ``traceparent`` still goes through.  Without
opentelemetry-api installed, every function here does nothing and the
middleware is not added.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, MutableMapping
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from dramatiq.broker import MessageProxy

from .call import Call, is_call

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the otel extra is not installed: tracing is off
    trace = None  # type: ignore[assignment]

#: The message option that carries the caller's trace context (a dict of W3C headers).
OPTION = "trace_context"


# The call span of the delivery a worker thread is performing, and its attempt count.
_current = threading.local()


@functools.cache
def _tracer() -> trace.Tracer:
    """dispatch's tracer, made once (the package version is a ~0.5 ms look-up).

    Made before the application sets its tracer provider, it is OpenTelemetry's
    proxy tracer, which follows the provider set later.
    """
    return trace.get_tracer("dispatch", version("dispatch"))


def enabled() -> bool:
    """Whether opentelemetry-api is installed, so calls are traced."""
    return trace is not None


def with_caller_context(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus the caller's current trace context, if it has one (the sending side)."""
    if trace is None or OPTION in options:
        return options
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {**options, OPTION: carrier} if carrier else options


def inject(headers: MutableMapping[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``, baggage) for the current span to an outgoing request's headers."""
    if trace is not None:
        propagate.inject(headers)


class AttemptSpans:
    """The transport's attempt observer (:class:`~dispatch.transport.AttemptObserver`): a client span per attempt.

    The span is current while the attempt runs, so the ``traceparent`` the
    request carries names it; it records the answer's status and the error
    the attempt ended with.
    """

    @contextlib.contextmanager
    def observe(self, method: str, url: str) -> Iterator[_SpanStatus]:
        parts = urlsplit(url)
        number = getattr(_current, "attempts", 0) + 1
        _current.attempts = number
        attributes = {
            "http.request.method": method,
            "server.address": parts.hostname or "",
            "url.full": f"{parts.scheme}://{Call(url).host}{parts.path}",  # no credentials, no query
            "dispatch.attempt": number,
        }
        with _tracer().start_as_current_span(
            method,
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield _SpanStatus(span)
            except Exception as error:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(trace.StatusCode.ERROR, str(error))
                raise


class _SpanStatus:
    """Notes the HTTP status an attempt got (the last one, after redirects) on the attempt's span."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def answered(self, status: int) -> None:
        self.span.set_attribute("http.response.status_code", status)


#: The one attempt observer a transport adds when tracing is on (:func:`enabled`).
ATTEMPT_SPANS = AttemptSpans()


class Tracing(dramatiq.Middleware):
    """Opens a span for each delivery of a call, in the caller's trace; the transport's attempts nest under it."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        _current.span = _current.token = None
        _current.attempts = 0
        if not is_call(broker, message):
            return
        call = Call.from_message(message)
        parent = propagate.extract(message.options.get(OPTION) or {})
        span = _tracer().start_span(
            f"{message.actor_name} {call.host}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "http.request.method": call.method,
                "server.address": call.host,
                "dispatch.retries": message.options.get("retries", 0),
                "dispatch.flow_waits": message.options.get("flow_waits", 0),
            },
        )
        _current.span = span
        _current.token = otel_context.attach(trace.set_span_in_context(span))

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None:
            self._end("success")
        elif isinstance(exception, dramatiq.Retry):
            self._end("retry_scheduled")
        else:
            self._end(type(exception).__name__, error=str(exception))

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._end("postponed" if message.options.get("postponed") else "cancelled")

    def _end(self, outcome: str, error: str | None = None) -> None:
        span, token = getattr(_current, "span", None), getattr(_current, "token", None)
        _current.span = _current.token = None
        if span is None or token is None:
            return
        span.set_attribute("dispatch.outcome", outcome)
        span.set_attribute("dispatch.attempts", getattr(_current, "attempts", 0))
        if error is not None:
            span.set_attribute("error.type", outcome)
            span.set_status(trace.StatusCode.ERROR, error)
        span.end()
        otel_context.detach(token)

"""The actor that performs calls: :class:`HttpDispatch`.

A call's life: the caller validates it and publishes it (this class's
``send`` family, then :mod:`dispatch.publisher`); a worker runs
:meth:`HttpDispatch.perform`, which makes a few quick attempts through
:mod:`dispatch.transport`; if they all fail and the retry schedule has a
delay left, the message is re-enqueued through dramatiq's delay queue
(``Retry``), so the wait costs no worker thread; when the schedule is used
up the call fails with ``TransportError`` and lands in the dead-letter
queue.  The endpoint's answer is read by :mod:`dispatch.protocol`, and the
Results middleware stores whatever the call ends with.

The built-in ``http_dispatch`` actor is the instance
:func:`default_dispatcher` returns; :mod:`dispatch.tasks` declares it for
workers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from . import tracing
from .call import ACTOR_NAME
from .errors import DispatchError
from .options import CallOptions
from .protocol import parse_answer
from .publisher import check_message_size, publish, publish_many
from .redaction import redact_url
from .redis_connect import patiently
from .result import CallResult
from .retries import DeliveryFailed
from .runtime import get_runtime
from .transport import Answer, WireRequest
from .validation import check_call


def _scheduled_redelivery(retries: int, exception: BaseException) -> bool:
    """dramatiq's ``retry_when``: re-enqueue only the deliveries the actor itself scheduled."""
    return isinstance(exception, dramatiq.Retry)


class HttpDispatch(dramatiq.Actor[..., Any]):
    """An actor whose messages are HTTP calls, validated in the caller and sent as :class:`CallResult` handles.

    Validation sits in ``message_with_options`` because every way of sending
    (``send``, ``send_with_options``, pipelines) passes through it, so bad
    input can never reach the queue.
    """

    #: Marks the actor's messages as calls for the call log and metrics.
    performs_calls = True

    #: A subclass's own queue (with its ``.DQ``/``.XQ``); ``None``: ``DISPATCH_QUEUE``.
    queue_name: str | None = None  # type: ignore[assignment]  # a class default; an actor's own is always a str

    def __init__(self, *, actor_name: str | None = None, queue_name: str | None = None) -> None:
        runtime = get_runtime()
        super().__init__(
            self.perform,
            broker=runtime.broker,
            actor_name=actor_name or type(self).__name__,
            queue_name=queue_name or type(self).queue_name or runtime.settings.queue,
            priority=0,
            options={
                "store_results": True,
                "retry_when": _scheduled_redelivery,
                "throws": (DispatchError,),  # an expected outcome: logged by CallLog, no traceback
            },
        )

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    # -- the caller's side -------------------------------------------------------------------

    def message_with_options(
        self, *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> CallResult:
        try:
            bound = self.signature.bind(*args, **(kwargs or {}))
        except TypeError as exc:
            raise ValueError(f"{self.actor_name}: {exc}") from None
        bound.apply_defaults()
        checked = check_call(**bound.arguments)
        options = tracing.with_caller_context(options)  # the caller's trace, joined by the worker's spans
        message = CallResult(**super().message_with_options(args=checked, kwargs={}, **options).asdict())
        what = f"call to {redact_url(checked[0])}"
        check_message_size(message, get_runtime().settings, what)  # CallResult keeps the bytes
        return message

    def send(self, *args: Any, **kwargs: Any) -> CallResult:
        return self.send_with_options(args=args, kwargs=kwargs)

    def send_with_options(
        self,
        *,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        delay: timedelta | int | None = None,
        **options: Any,
    ) -> CallResult:
        if isinstance(delay, timedelta):
            delay = int(delay.total_seconds() * 1000)
        return self.enqueue(self.message_with_options(args=args, kwargs=kwargs, **options), delay)

    def enqueue(self, message: CallResult, delay: int | None = None) -> CallResult:
        """Publish a ``message`` made by :meth:`message_with_options` (so validated), ``delay`` ms from now.

        Blocks until RabbitMQ confirmed it; ``URL.asend`` runs it in a thread.
        """
        runtime = get_runtime()
        if delay:  # recorded first, so a scheduled call is never seen as unknown, and can be cancelled
            try:
                schedule = functools.partial(runtime.call_states.schedule, message.message_id, delay)
                patiently(schedule, runtime.settings.send_timeout)  # through a failover, as long as a send would
            except Exception as error:
                raise DispatchError(
                    f"cannot record the scheduled call in the results store, it was not sent: {error}"
                ) from None
        return publish(self.broker, message, delay, runtime.settings.send_timeout)

    def send_many(self, calls: Iterable[Sequence[Any]]) -> list[CallResult]:
        """Queue many calls, each given as the actor's arguments; one handle per call, in order.

        Every call is validated before any is published (a bad one raises
        ``ValueError`` and nothing is sent); then all are published with
        pipelined publisher confirms and returned once every one is confirmed.
        """
        messages = [self.message_with_options(args=tuple(call)) for call in calls]
        return publish_many(self.broker, messages, get_runtime().settings.send_timeout)

    # -- the worker's side -------------------------------------------------------------------

    def perform(
        self,
        url: str,
        method: str = "GET",
        params: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Call ``url`` with ``params`` and return the endpoint's ``retval``.

        ``options`` may override ``timeout``, ``max_attempts`` and ``retry_schedule`` for this call,
        and shape it: ``headers`` (extra request headers) and ``body`` (``"form"`` or ``"json"``).
        A message put on the queue by hand, past :meth:`message_with_options`, still ends as one
        of the package's errors: its URL is judged again by the transport (``DestinationRefused``),
        its timeout clamped, and an unreadable ``max_attempts`` fails as a ``DispatchError``.
        """
        runtime = get_runtime()
        resolved = CallOptions.resolve(options, runtime.settings)
        message = CurrentMessage.get_current_message()
        request = resolved.request(url, method, params, message.message_id if message else None)
        try:
            answer = runtime.transport.deliver(request, resolved.policy, self.prepare)
        except DeliveryFailed as failure:
            schedule = resolved.schedule
            deliveries_so_far = message.options.get("retries", 0) if message else len(schedule.delays)
            delay = schedule.next_delay(deliveries_so_far, failure)
            if delay is not None:
                raise dramatiq.Retry(str(failure), delay=int(delay * 1000)) from None
            raise schedule.give_up(failure) from None
        return self.parse(answer)

    # -- hooks for subclasses ----------------------------------------------------------------

    def prepare(self, request: WireRequest) -> WireRequest:
        """The request about to go on the wire, on every attempt; return it (changed or not).

        ``request.headers`` (a dict), ``request.body`` (bytes), ``request.method``
        and ``request.url`` may be changed.  It is signed after this returns, so
        the signature covers the change.  The default returns it as it is.
        """
        return request

    def parse(self, answer: Answer) -> Any:
        """The call's result from the endpoint's 2xx ``answer`` (``status``, ``headers``, ``body`` bytes).

        What it returns is stored as the call's outcome; what it raises is the
        call's error (one of the package's error classes reads best for callers).
        The default reads the callback protocol.
        """
        return parse_answer(answer.body)


@functools.cache
def default_dispatcher() -> HttpDispatch:
    """The built-in ``http_dispatch`` actor on ``DISPATCH_QUEUE``, declared on first use."""
    return HttpDispatch(actor_name=ACTOR_NAME)

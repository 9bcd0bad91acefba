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
from .protocol import MAX_ATTEMPTS, check_call, parse_answer
from .publisher import publish, publish_many
from .result import CallResult
from .retries import DeliveryFailed, RetrySchedule, retry_policy
from .transport import Answer, Request, WireRequest
from .wiring import get_broker, get_settings, get_transport


def _scheduled_redelivery(retries: int, exception: BaseException) -> bool:
    """dramatiq's ``retry_when``: re-enqueue only the deliveries the actor itself scheduled."""
    return isinstance(exception, dramatiq.Retry)


class HttpDispatch(dramatiq.Actor):
    """An actor whose messages are HTTP calls, validated in the caller and sent as :class:`CallResult` handles.

    Validation sits in ``message_with_options`` because every way of sending
    (``send``, ``send_with_options``, pipelines) passes through it, so bad
    input can never reach the queue.
    """

    #: Marks the actor's messages as calls for the call log and metrics.
    performs_calls = True

    #: A subclass's own queue (with its ``.DQ``/``.XQ``); ``None``: ``DISPATCH_QUEUE``.
    queue_name: str | None = None

    def __init__(self, *, actor_name: str | None = None, queue_name: str | None = None) -> None:
        settings = get_settings()
        super().__init__(
            self.perform,
            broker=get_broker(),
            actor_name=actor_name or type(self).__name__,
            queue_name=queue_name or type(self).queue_name or settings.queue,
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

    def message_with_options(self, *, args: tuple = (), kwargs: dict | None = None, **options: Any) -> CallResult:
        try:
            bound = self.signature.bind(*args, **(kwargs or {}))
        except TypeError as exc:
            raise ValueError(f"{self.actor_name}: {exc}") from None
        bound.apply_defaults()
        checked = check_call(**bound.arguments)
        options = tracing.with_caller_context(options)  # the caller's trace, joined by the worker's spans
        message = CallResult(**super().message_with_options(args=checked, kwargs={}, **options).asdict())
        size = len(message.encode())  # encoded once: CallResult keeps the bytes it is published as
        limit = get_settings().max_message_bytes
        if size > limit:
            raise ValueError(
                f"call to {checked[0]} encodes to {size} bytes, over the {limit}-byte "
                "limit for one message (DISPATCH_MAX_MESSAGE_BYTES); send a reference to the data instead"
            )
        return message

    def send_with_options(
        self, *, args: tuple = (), kwargs: dict | None = None, delay: timedelta | int | None = None, **options: Any
    ) -> CallResult:
        if isinstance(delay, timedelta):
            delay = int(delay.total_seconds() * 1000)
        message = self.message_with_options(args=args, kwargs=kwargs, **options)
        if delay:  # recorded first, so a scheduled call is never seen as unknown, and can be cancelled
            try:
                self.broker.call_states.schedule(message.message_id)
            except Exception as error:
                raise DispatchError(
                    f"cannot record the scheduled call in the results store, it was not sent: {error}"
                ) from None
        return publish(self.broker, message, delay, get_settings().send_timeout)

    def send_many(self, calls: Iterable[Sequence[Any]]) -> list[CallResult]:
        """Queue many calls, each given as the actor's arguments; one handle per call, in order.

        Every call is validated before any is published (a bad one raises
        ``ValueError`` and nothing is sent); then all are published with
        pipelined publisher confirms and returned once every one is confirmed.
        """
        messages = [self.message_with_options(args=tuple(call)) for call in calls]
        return publish_many(self.broker, messages, get_settings().send_timeout)

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
        settings, options = get_settings(), options or {}
        message = CurrentMessage.get_current_message()
        request = Request(
            url=url,
            method=method,
            params=params or {},
            timeout=options.get("timeout", settings.timeout),
            max_response_bytes=settings.max_response_bytes,
            call_id=message.message_id if message else None,
            headers=options.get("headers") or {},
            body_format=options.get("body", "form"),
        )
        try:
            max_attempts = min(int(options.get("max_attempts", settings.max_attempts)), MAX_ATTEMPTS)
        except (TypeError, ValueError, OverflowError):
            raise DispatchError(f"malformed call option max_attempts={options['max_attempts']!r}, not sent") from None
        policy = retry_policy(
            max_attempts,
            settings.backoff_initial,
            settings.backoff_max,
            settings.retry_after_max,
        )
        try:
            answer = get_transport().deliver(request, policy, self.prepare)
        except DeliveryFailed as failure:
            schedule = RetrySchedule(
                options.get("retry_schedule", settings.retry_schedule),
                settings.retry_after_max,
                settings.scheduled_retry_after_max,
            )
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

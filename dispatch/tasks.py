"""The ``http_dispatch`` actor, on a broker configured from the environment.

Importing this module is what ``dramatiq dispatch.tasks`` does to start a
worker, so it reads the settings, builds the broker and makes it dramatiq's
global broker as a side effect.  Clients import it lazily (the first
``URL.send()``), so ``import dispatch`` alone never touches the network.

A call's life: a few quick attempts inside one delivery (tenacity, in
:mod:`dispatch.transport`); if they all fail and the retry schedule has a
delay left, the message is re-enqueued through dramatiq's delay queue
(``Retry``), so the wait costs no worker thread; when the schedule is used
up the call fails with ``TransportError`` and lands in the dead-letter queue.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from .broker import ACTOR_NAME, build_broker
from .errors import DispatchError, TransportError
from .protocol import check_call, parse_answer
from .publisher import publish, publish_many
from .result import CallResult
from .settings import Settings
from .transport import DeliveryFailed, Request, RetryPolicy, Transport

settings = Settings.from_env()
broker = build_broker(settings)
dramatiq.set_broker(broker)

transport = Transport(settings.destination_policy(), settings.signing_secrets)


class HttpDispatchActor(dramatiq.Actor):
    """An actor whose messages are validated in the caller and sent as :class:`CallResult` handles.

    Validation sits in ``message_with_options`` because every way of sending
    (``send``, ``send_with_options``, pipelines) passes through it, so bad
    input can never reach the queue.
    """

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    def message_with_options(self, *, args: tuple = (), kwargs: dict | None = None, **options: Any) -> CallResult:
        try:
            bound = self.signature.bind(*args, **(kwargs or {}))
        except TypeError as exc:
            raise ValueError(f"{self.actor_name}: {exc}") from None
        bound.apply_defaults()
        checked = check_call(**bound.arguments)
        message = CallResult(**super().message_with_options(args=checked, kwargs={}, **options).asdict())
        size = len(message.encode())  # encoded once: CallResult keeps the bytes it is published as
        if size > settings.max_message_bytes:
            raise ValueError(
                f"call to {checked[0]} encodes to {size} bytes, over the {settings.max_message_bytes}-byte "
                "limit for one message (DISPATCH_MAX_MESSAGE_BYTES); send a reference to the data instead"
            )
        return message

    def send_with_options(
        self, *, args: tuple = (), kwargs: dict | None = None, delay: timedelta | int | None = None, **options: Any
    ) -> CallResult:
        if isinstance(delay, timedelta):
            delay = int(delay.total_seconds() * 1000)
        message = self.message_with_options(args=args, kwargs=kwargs, **options)
        return publish(self.broker, message, delay, settings.send_timeout)

    def send_many(self, calls: Iterable[Sequence[Any]]) -> list[CallResult]:
        """Queue many calls, each given as the actor's arguments; one handle per call, in order.

        Every call is validated before any is published (a bad one raises
        ``ValueError`` and nothing is sent); then all are published with
        pipelined publisher confirms and returned once every one is confirmed.
        """
        messages = [self.message_with_options(args=tuple(call)) for call in calls]
        return publish_many(self.broker, messages, settings.send_timeout)


@functools.lru_cache(maxsize=16)
def retry_policy(max_attempts: int) -> RetryPolicy:
    """The policy for calls with ``max_attempts``, built once: most calls share the worker's default."""
    return RetryPolicy(
        max_attempts=max_attempts,
        backoff_initial=settings.backoff_initial,
        backoff_max=settings.backoff_max,
        retry_after_max=settings.retry_after_max,
    )


def _scheduled_redelivery(retries: int, exception: BaseException) -> bool:
    """dramatiq's ``retry_when``: re-enqueue only the deliveries the actor itself scheduled."""
    return isinstance(exception, dramatiq.Retry)


@dramatiq.actor(
    actor_class=HttpDispatchActor,
    actor_name=ACTOR_NAME,
    queue_name=settings.queue,
    store_results=True,
    retry_when=_scheduled_redelivery,
    throws=(DispatchError,),  # an expected outcome: logged by CallLog, no traceback
)
def http_dispatch(
    url: str, method: str = "GET", params: dict[str, Any] | None = None, options: dict[str, Any] | None = None
) -> Any:
    """Call ``url`` with ``params`` and return the endpoint's ``retval``.

    ``options`` may override ``timeout``, ``max_attempts`` and ``retry_schedule`` for this call.
    """
    options = options or {}
    message = CurrentMessage.get_current_message()
    request = Request(
        url=url,
        method=method,
        params=params or {},
        timeout=options.get("timeout", settings.timeout),
        max_response_bytes=settings.max_response_bytes,
        call_id=message.message_id if message else None,
    )
    try:
        body = transport.deliver(request, retry_policy(int(options.get("max_attempts", settings.max_attempts))))
    except DeliveryFailed as failure:
        schedule = options.get("retry_schedule", settings.retry_schedule)
        deliveries_so_far = message.options.get("retries", 0) if message else len(schedule)
        if deliveries_so_far < len(schedule):
            delay = max(schedule[deliveries_so_far], failure.retry_after or 0)
            raise dramatiq.Retry(str(failure), delay=int(delay * 1000)) from None
        if failure.retry_after is not None and failure.retry_after > settings.retry_after_max:
            raise TransportError(
                f"{failure}; the endpoint asked to wait longer than DISPATCH_RETRY_AFTER_MAX "
                f"({settings.retry_after_max:g}s) and no scheduled delivery is left"
            ) from None
        raise TransportError(str(failure)) from None
    return parse_answer(body)

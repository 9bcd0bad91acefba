"""The ``http_dispatch`` actor, on a broker configured from the environment.

Importing this module is what ``dramatiq dispatch.tasks`` does to start a
worker, so it reads the settings, builds the broker and makes it dramatiq's
global broker as a side effect.  Clients import it lazily (the first
``URL.send()``), so ``import dispatch`` alone never touches the network.
"""

from __future__ import annotations

import inspect
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from .broker import ACTOR_NAME, build_broker
from .errors import DispatchError
from .protocol import check_call, parse_answer
from .result import CallResult
from .settings import Settings
from .transport import Request, RetryPolicy, Transport

settings = Settings.from_env()
broker = build_broker(settings)
dramatiq.set_broker(broker)

transport = Transport()


class HttpDispatchActor(dramatiq.Actor):
    """An actor whose messages are validated in the caller and sent as :class:`CallResult` handles.

    Validation sits in ``message_with_options`` because every way of sending
    (``send``, ``send_with_options``, pipelines) passes through it, so bad
    input can never reach the queue.
    """

    def message_with_options(self, *, args: tuple = (), kwargs: dict | None = None, **options: Any) -> CallResult:
        try:
            bound = inspect.signature(self.fn).bind(*args, **(kwargs or {}))
        except TypeError as exc:
            raise ValueError(f"{self.actor_name}: {exc}") from None
        bound.apply_defaults()
        checked = check_call(**bound.arguments)
        message = super().message_with_options(args=checked, kwargs={}, **options)
        return CallResult(**message.asdict())


@dramatiq.actor(
    actor_class=HttpDispatchActor,
    actor_name=ACTOR_NAME,
    queue_name=settings.queue,
    store_results=True,
    max_retries=0,  # transport retries happen inside the call, with tenacity
    throws=(DispatchError,),  # an expected outcome: logged by CallLog, no traceback
)
def http_dispatch(
    url: str, method: str = "GET", params: dict[str, Any] | None = None, options: dict[str, Any] | None = None
) -> Any:
    """Call ``url`` with ``params`` and return the endpoint's ``retval``.

    ``options`` may override ``timeout`` and ``max_attempts`` for this call.
    """
    options = options or {}
    message = CurrentMessage.get_current_message()
    request = Request(
        url=url,
        method=method,
        params=params or {},
        headers={"Idempotency-Key": message.message_id} if message else {},
        timeout=options.get("timeout", settings.timeout),
        max_response_bytes=settings.max_response_bytes,
    )
    policy = RetryPolicy(
        max_attempts=int(options.get("max_attempts", settings.max_attempts)),
        backoff_initial=settings.backoff_initial,
        backoff_max=settings.backoff_max,
    )
    return parse_answer(transport.deliver(request, policy))

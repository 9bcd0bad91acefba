"""A call's options as a worker performs it: the message's own, the worker's settings for the rest.

A message carries only what its caller set (``timeout``, ``max_attempts``,
``retry_schedule``, ``headers``, ``body``; checked in the caller by
:func:`dispatch.validation.check_options`).  :meth:`CallOptions.resolve`
fills in the rest from the settings, once per delivery, and gives the
actor the request to attempt, the quick attempts' policy and the schedule
of later deliveries.  A message put on the queue by hand, past those
checks, still ends as one of the package's errors: an unreadable
``max_attempts`` fails as a ``DispatchError``, and the transport clamps
the timeout and judges the URL again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import DispatchError
from .retries import RetryPolicy, RetrySchedule, retry_policy
from .settings import Settings
from .transport import Request
from .validation import MAX_ATTEMPTS, MAX_TIMEOUT


@dataclasses.dataclass(frozen=True)
class CallOptions:
    """Everything about one delivery of a call that is not its URL, method and params."""

    timeout: float
    headers: Mapping[str, str]
    body: str
    max_response_bytes: int
    policy: RetryPolicy  # the quick attempts
    schedule: RetrySchedule  # the later deliveries

    @classmethod
    def resolve(cls, options: Mapping[str, Any] | None, settings: Settings) -> CallOptions:
        """The call's ``options`` over the worker's ``settings``."""
        options = options or {}
        try:
            max_attempts = min(int(options.get("max_attempts", settings.max_attempts)), MAX_ATTEMPTS)
        except (TypeError, ValueError, OverflowError):
            raise DispatchError(f"malformed call option max_attempts={options['max_attempts']!r}, not sent") from None
        schedule: Sequence[float] = options.get("retry_schedule", settings.retry_schedule)
        return cls(
            timeout=options.get("timeout", settings.timeout),
            headers=options.get("headers") or {},
            body=options.get("body", "form"),
            max_response_bytes=settings.max_response_bytes,
            policy=retry_policy(max_attempts, settings.backoff_initial, settings.backoff_max, settings.retry_after_max),
            schedule=RetrySchedule(schedule, settings.retry_after_max, settings.scheduled_retry_after_max),
        )

    @property
    def worst_case(self) -> float:
        """The longest this delivery's quick attempts can take: each its whole timeout, each wait its longest.

        A wait is at most ``backoff_max``, or a ``Retry-After`` up to ``retry_after_max``.  The deadline of
        a delivery (its time limit, its concurrency lease) is this plus a margin.
        """
        policy = self.policy
        timeout = min(self.timeout, MAX_TIMEOUT) if self.timeout > 0 else MAX_TIMEOUT  # as the transport bounds it
        wait = max(policy.backoff_max, policy.retry_after_max)
        return policy.max_attempts * timeout + (policy.max_attempts - 1) * wait

    def request(self, url: str, method: str, params: dict[str, Any] | None, call_id: str | None) -> Request:
        """The request each attempt of this delivery sends."""
        return Request(
            url=url,
            method=method,
            params=params or {},
            timeout=self.timeout,
            max_response_bytes=self.max_response_bytes,
            call_id=call_id,
            headers=self.headers,
            body_format=self.body,
        )


#: What a call's time limit adds to its worst case (the answer's parsing, the hooks around it).
TIME_LIMIT_MARGIN_SECONDS = 5.0


def worst_case(options: Mapping[str, Any] | None, settings: Settings) -> float:
    """:attr:`CallOptions.worst_case` of a call's ``options``; the worker's own for options it cannot read."""
    try:
        return CallOptions.resolve(options, settings).worst_case
    except (DispatchError, TypeError, ValueError):  # a message put on the queue by hand: it fails in the actor
        return CallOptions.resolve(None, settings).worst_case

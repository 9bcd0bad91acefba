"""When a failed attempt is tried again: the retry strategies, in tenacity's style.

A call that gets no usable answer is retried at two scales, and both are
decided here:

* **Quick attempts**, inside one delivery (:class:`RetryPolicy`): up to
  ``DISPATCH_MAX_ATTEMPTS`` with exponential backoff and jitter, so many
  workers that saw the same outage do not retry in lockstep.  An endpoint's
  ``Retry-After`` is a minimum wait (:class:`wait_at_least_retry_after`) up
  to ``DISPATCH_RETRY_AFTER_MAX``; a longer one ends the quick attempts
  (:class:`stop_if_retry_after_exceeds`) so the call can wait as a delayed
  message instead of in a sleeping thread.
* **Scheduled deliveries** (:class:`RetrySchedule`): once the quick attempts
  are spent, the call is re-enqueued after the next delay of
  ``DISPATCH_RETRY_SCHEDULE``, and fails with ``TransportError`` when the
  schedule is used up.

Only transport failures are retried (refused, reset, timed out, or
429/502/503/504); an answer the endpoint meant to give is final.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import logging
import math
import time
from collections.abc import Sequence

import tenacity

from .errors import TransportError
from .redaction import get_logger

logger = get_logger("dispatch.transport")

#: Statuses that mean "not now" rather than "no": the call is tried again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class AttemptFailed(Exception):
    """One attempt got no usable answer; another attempt may.

    ``retry_after`` is the wait in seconds the endpoint asked for, if any;
    ``reached_wire`` is False only when the attempt never had a connection to
    write the request on (set by :func:`dispatch.transport._errors.mapped_errors`).
    """

    def __init__(self, message: str, retry_after: float | None = None, *, reached_wire: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reached_wire = reached_wire


class DeliveryFailed(TransportError):
    """Every quick attempt failed; ``retry_after`` says how long the endpoint asked us to wait, if it did."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: The longest wait a ``Retry-After`` (or one scheduled delay) can ask for;
#: a longer one -- ``1`` followed by 400 zeros, a date in the year 9999 -- is
#: read as this.  Seven days, the ceiling of one ``retry_schedule`` delay.
MAX_RETRY_AFTER = 7 * 24 * 3600.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or unreadable.

    Never raises: delta-seconds are ASCII digits only (``str.isdigit`` also
    accepts ``²``, which ``float`` does not), and any answer is a finite
    number between 0 and :data:`MAX_RETRY_AFTER`.
    """
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Compared as text first: int() refuses more than 4300 digits.
        digits = value.lstrip("0") or "0"
        return float(min(int(digits), int(MAX_RETRY_AFTER))) if len(digits) <= 12 else MAX_RETRY_AFTER
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        wait = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, OverflowError, OSError, IndexError, AttributeError):
        return None
    if not math.isfinite(wait):
        return None
    return min(max(0.0, wait), MAX_RETRY_AFTER)


class wait_at_least_retry_after(tenacity.wait.wait_base):
    """Wait as ``fallback`` says, but never less than the endpoint's ``Retry-After``."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return max(_retry_after(retry_state) or 0.0, self.fallback(retry_state))


class stop_if_retry_after_exceeds(tenacity.stop.stop_base):
    """Stop the quick attempts when the endpoint asks for a longer wait than a thread should hold."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        asked = _retry_after(retry_state)
        return asked is not None and asked > self.limit


def _retry_after(retry_state: tenacity.RetryCallState) -> float | None:
    """The wait the failed attempt's endpoint asked for (``AttemptFailed.retry_after``), if any."""
    outcome = retry_state.outcome  # set: tenacity asks its wait and stop strategies after an attempt
    return getattr(outcome.exception() if outcome else None, "retry_after", None)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How many quick attempts a call gets and how long to wait between them."""

    max_attempts: int
    backoff_initial: float
    backoff_max: float
    retry_after_max: float

    @functools.cached_property
    def retrying(self) -> tenacity.Retrying:
        """The tenacity loop for this policy; one per policy, as tenacity keeps each run's state per thread."""
        backoff = tenacity.wait_exponential_jitter(
            multiplier=self.backoff_initial, max=self.backoff_max, jitter=self.backoff_initial
        )
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts) | stop_if_retry_after_exceeds(self.retry_after_max),
            wait=wait_at_least_retry_after(backoff),
            retry=tenacity.retry_if_exception_type(AttemptFailed),
            before_sleep=tenacity.before_sleep_log(logger, logging.DEBUG),
            reraise=True,
        )


@functools.lru_cache(maxsize=16)
def retry_policy(max_attempts: int, backoff_initial: float, backoff_max: float, retry_after_max: float) -> RetryPolicy:
    """The policy for these values, built once: most calls share the worker's defaults."""
    return RetryPolicy(max_attempts, backoff_initial, backoff_max, retry_after_max)


@dataclasses.dataclass(frozen=True)
class RetrySchedule:
    """The later deliveries of a call whose quick attempts all failed.

    ``delays[n]`` is the wait before delivery ``n + 1``; an endpoint's
    ``Retry-After`` lengthens it, up to ``scheduled_retry_after_max``
    (``DISPATCH_SCHEDULED_RETRY_AFTER_MAX``).  When no delay is left the call fails.
    """

    delays: Sequence[float]
    retry_after_max: float
    scheduled_retry_after_max: float = MAX_RETRY_AFTER

    def next_delay(self, deliveries_so_far: int, failure: DeliveryFailed) -> float | None:
        """Seconds until the next delivery, or None when the schedule is used up."""
        if deliveries_so_far >= len(self.delays):
            return None
        asked = min(failure.retry_after or 0, self.scheduled_retry_after_max)
        delay = max(self.delays[deliveries_so_far], asked)
        # Bounded however the schedule was made: dramatiq's delay is an integer of milliseconds.
        return min(delay, MAX_RETRY_AFTER) if delay == delay else MAX_RETRY_AFTER

    def give_up(self, failure: DeliveryFailed) -> TransportError:
        """The error a call ends with once no delivery is left."""
        if failure.retry_after is not None and failure.retry_after > self.retry_after_max:
            return TransportError(
                f"{failure}; the endpoint asked to wait longer than DISPATCH_RETRY_AFTER_MAX "
                f"({self.retry_after_max:g}s) and no scheduled delivery is left"
            )
        return TransportError(str(failure))

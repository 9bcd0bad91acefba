"""The retry strategies (``dispatch.retries``): ``Retry-After`` parsing and the scheduled delivery's cap on it."""

from __future__ import annotations


def test_retry_after_accepts_seconds_and_http_dates():
    from dispatch.retries import parse_retry_after

    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_a_scheduled_delivery_honours_retry_after_only_up_to_its_cap():
    from dispatch.retries import DeliveryFailed, RetrySchedule

    schedule = RetrySchedule((5, 60), retry_after_max=30, scheduled_retry_after_max=3600)
    assert schedule.next_delay(0, DeliveryFailed("503", retry_after=120)) == 120  # longer than the step: honoured
    assert schedule.next_delay(1, DeliveryFailed("503", retry_after=10**9)) == 3600  # absurd: cut to the cap
    assert schedule.next_delay(1, DeliveryFailed("503")) == 60
    assert schedule.next_delay(2, DeliveryFailed("503")) is None

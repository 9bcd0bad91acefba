"""send_in/send_at/cancel/from_id with bad input, and through the in-process stub worker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dispatch import URL, CallResult
from dispatch.errors import CallCancelled, DispatchError
from dispatch.testing import stub_worker


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), 31 * 86400, True, "5", None])
def test_send_in_refuses_a_bad_delay_before_anything_is_queued(seconds):
    with pytest.raises(ValueError, match="send_in"):
        URL("http://example.com/x").send_in(seconds)


@pytest.mark.parametrize("when", [datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 1893456000])
def test_send_at_refuses_a_naive_or_non_datetime(when):
    with pytest.raises(ValueError, match="timezone-aware"):
        URL("http://example.com/x").send_at(when)


@pytest.mark.parametrize("call_id", ["", "   ", None, 42])
def test_from_id_refuses_a_non_id(call_id):
    with pytest.raises(ValueError):
        CallResult.from_id(call_id)


def test_cancel_and_state_through_the_stub_worker():
    with stub_worker():
        handle = URL("http://127.0.0.1:9/never").send_at(datetime.now(timezone.utc) + timedelta(hours=1))
        assert handle.state() == "scheduled"
        assert handle.cancel() is True
        assert handle.cancel() is False  # cancelled once; not again
        with pytest.raises(CallCancelled):
            handle.get(timeout=1)
        assert issubclass(CallCancelled, DispatchError)

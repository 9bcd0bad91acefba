"""The user's tests of code that sends calls and does not wait for them."""

import pytest
import shop
from fake_pricing import running


@pytest.fixture
def pricing():
    with running() as service:
        yield service


def test_sent_calls_are_recorded_and_join_waits_for_them(dispatch_stub, pricing):
    handles = shop.notify_shipped(pricing.url, ["A1", "B2"])
    assert [(call.method, call.params) for call in dispatch_stub.sent] == [
        ("POST", {"order": "A1"}),
        ("POST", {"order": "B2"}),
    ]
    assert [call.message_id for call in dispatch_stub.sent] == [handle.message_id for handle in handles]
    dispatch_stub.join(timeout=10)
    assert sorted(args["order"] for _, _, args in pricing.requests) == ["A1", "B2"]


def test_each_test_starts_with_nothing_sent(dispatch_stub):
    assert dispatch_stub.sent == []

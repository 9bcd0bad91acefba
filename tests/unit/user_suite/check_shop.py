"""The user's tests of code that waits for its calls' results."""

import pytest
import shop
from dramatiq.brokers.stub import StubBroker
from fake_pricing import running

from dispatch import RemoteExecuteError


@pytest.fixture
def pricing():
    with running() as service:
        yield service


def test_quote_is_computed_by_the_service(dispatch_stub, pricing):
    assert shop.quote(pricing.url, quantity=6, unit_price=7) == 42
    assert pricing.requests == [("GET", "/multiply", {"x": "6", "y": "7"})]


def test_label_is_posted_form_encoded_with_unicode(dispatch_stub, pricing):
    assert shop.label(pricing.url, "Zürich ☃") == "ZÜRICH ☃"
    assert pricing.requests == [("POST", "/upper", {"name": "Zürich ☃"})]


def test_a_failure_answer_raises_remote_execute_error(dispatch_stub, pricing):
    with pytest.raises(RemoteExecuteError, match="division by zero"):
        shop.unit_price(pricing.url, total=10, quantity=0)


def test_calls_run_on_the_in_memory_broker(dispatch_stub):
    assert isinstance(dispatch_stub.broker, StubBroker)

"""The ``URL`` facade (``dispatch.url``, Celery's MutableURL): its editable query, and every bad input
failing in the caller before anything is enqueued (dramatiq's StubBroker through ``stub_worker``)."""

from __future__ import annotations

import pytest

from dispatch import (
    URL,
    TransportError,
)
from dispatch.testing import stub_worker


def test_url_keeps_its_query_as_an_editable_dict():
    url = URL("http://example.com/mul?x=10&y=10")
    assert url.query == {"x": "10", "y": "10"}
    url.query["z"] = "3"
    url.query["x"] = "1"
    assert str(url) == "http://example.com/mul?x=1&y=10&z=3"


def test_url_round_trips_repeated_keys_and_encoding():
    url = URL("https://h.example:8443/p%20q?a=1&a=2&e=%C3%A9&blank=#frag")
    assert url.query == {"a": ["1", "2"], "e": "é", "blank": ""}
    assert str(url) == "https://h.example:8443/p%20q?a=1&a=2&e=%C3%A9&blank=#frag"
    assert str(URL("http://h/")) == "http://h/"


def test_url_method_is_case_insensitive():
    assert URL("http://h/", method="post").method == "POST"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("example.com/multiply", "not an absolute http"),
        ("/multiply", "not an absolute http"),
        ("ftp://example.com/f", "not an absolute http"),
        ("http:///nohost", "not an absolute http"),
        ("http://h:99999/", "malformed"),
        (b"http://h/", "must be a string"),
    ],
)
def test_bad_urls_fail_in_the_caller(url, message):
    with pytest.raises(ValueError, match=message):
        URL(url)


def test_unknown_method_fails_in_the_caller():
    with pytest.raises(ValueError, match="method 'TRACE' is not supported"):
        URL("http://h/", method="TRACE")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"when": object()}, "'when' has a value of type object"),
        ({"b": b"bytes"}, "'b' has a value of type bytes"),
        ({"nested": {"a": 1}}, "'nested' has a value of type dict"),
        ({"many": [1, {2}]}, "'many' has a value of type set"),
        ({"nan": float("nan")}, "no JSON form"),
    ],
)
def test_unserialisable_params_fail_before_anything_is_enqueued(params, message):
    with stub_worker() as broker:
        with pytest.raises(ValueError, match=message):
            URL("http://h/").send(**params)
        from dispatch.tasks import http_dispatch

        with pytest.raises(ValueError, match=message):
            http_dispatch.send("http://h/", "GET", params)
        assert broker.queues[http_dispatch.queue_name].qsize() == 0


@pytest.mark.parametrize(("option", "value"), [("timeout", 0), ("timeout", "5"), ("max_attempts", 1.5)])
def test_bad_per_call_options_fail_in_the_caller(option, value):
    with pytest.raises(ValueError, match=f"call option {option}="):
        URL("http://h/", **{option: value})


@pytest.mark.parametrize(
    "bad", ["http://h/a\r\nX-Injected: 1", "http://h/\n", "http://h/a b", "http://h/\x00", "\thttp://h/"]
)
def test_urls_with_whitespace_or_control_characters_are_refused_not_stripped(bad):
    with pytest.raises(ValueError, match="percent-encode it"):
        URL(bad)


def test_params_too_large_for_one_message_fail_at_send():
    with stub_worker() as broker:
        with pytest.raises(ValueError, match="over the 1048576-byte limit"):
            URL("http://h/").send(blob="x" * 1_100_000)
        from dispatch.tasks import http_dispatch

        assert broker.queues[http_dispatch.queue_name].qsize() == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: URL("http://h/", method={}), "method must be a string, not dict"),
        (lambda: URL("http://h/").send(x=[None, {}]), "'x' has a value of type dict"),
    ],
)
def test_wrongly_typed_input_is_a_value_error_not_a_type_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_map_through_the_stub_broker_returns_working_handles():
    # dispatch.testing's in-memory broker has no publisher confirms: URL.map falls back to plain enqueues.
    with stub_worker():
        handles = URL("http://127.0.0.1:9/never", max_attempts=1).map([{"n": 1}, {"n": 2}])
        assert [h.args[2] for h in handles] == [{"n": 1}, {"n": 2}]
        for handle in handles:
            with pytest.raises(TransportError, match="1 attempt"):
                handle.get(timeout=10)

"""Unit tests: parsing, validation, configuration, the facade -- no broker needed.

Where a test needs a queue it uses :func:`dispatch.testing.stub_worker`
(dramatiq's StubBroker); every end-to-end claim is tested for real in
``test_calls.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dispatch
from dispatch import (
    URL,
    BadStatusError,
    ConfigurationError,
    DispatchError,
    InvalidResponseError,
    RemoteExecuteError,
    ResponseTooLargeError,
    TransportError,
    UnknownStatusError,
)
from dispatch.errors import error_from_result
from dispatch.protocol import parse_answer
from dispatch.settings import Settings
from dispatch.testing import stub_worker

README = Path(__file__).resolve().parents[2] / "README.md"


# -- the protocol (Celery 3.1 test_http.py: success, failure, empty, non-JSON, unknown) ---------


def test_success_answer_gives_retval():
    assert parse_answer(b'{"status": "success", "retval": 100}') == 100
    assert parse_answer(b'{"status": "success", "retval": {"a": [1, "\xc3\xa9"]}}') == {"a": [1, "é"]}
    assert parse_answer(b'{"status": "success"}') is None


def test_failure_answer_raises_with_its_reason():
    with pytest.raises(RemoteExecuteError) as caught:
        parse_answer(b'{"status": "failure", "reason": "Task failed"}')
    assert str(caught.value) == "Task failed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty response body"),
        (b"  \n", "empty response body"),
        (b"{{{{{{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"success"', "not a JSON object"),
    ],
)
def test_malformed_answers_raise_invalid_response(body, message):
    with pytest.raises(InvalidResponseError, match=message) as caught:
        parse_answer(body)
    assert type(caught.value) is InvalidResponseError


def test_unknown_status_raises_unknown_status_error():
    with pytest.raises(UnknownStatusError, match="'worked'"):
        parse_answer(b'{"status": "worked"}')
    with pytest.raises(UnknownStatusError, match="None"):
        parse_answer(b"{}")


# -- the error hierarchy ---------------------------------------------------------------------------


def test_error_hierarchy_matches_the_contract():
    assert issubclass(InvalidResponseError, DispatchError)
    assert issubclass(UnknownStatusError, InvalidResponseError)
    assert issubclass(BadStatusError, InvalidResponseError)
    assert issubclass(ResponseTooLargeError, InvalidResponseError)
    assert issubclass(RemoteExecuteError, DispatchError)
    assert issubclass(TransportError, DispatchError)
    assert not issubclass(RemoteExecuteError, InvalidResponseError)
    assert issubclass(ConfigurationError, ValueError)


def test_stored_errors_come_back_as_the_same_class():
    for cls in (RemoteExecuteError, TransportError, UnknownStatusError, BadStatusError, InvalidResponseError):
        error = error_from_result(cls.__name__, "why")
        assert type(error) is cls and str(error) == "why"
    foreign = error_from_result("KeyError", "x")  # an actor's own exception: still one of ours for the caller
    assert type(foreign) is DispatchError and str(foreign) == "KeyError: x"


# -- the URL facade (Celery's MutableURL) -----------------------------------------------------------


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


def test_actor_send_validates_too():
    with stub_worker() as broker:
        from dispatch.tasks import http_dispatch

        with pytest.raises(ValueError, match="not an absolute"):
            http_dispatch.send("file:///etc/passwd")
        with pytest.raises(ValueError, match="not supported"):
            http_dispatch.send("http://h/", "OPTIONS")
        with pytest.raises(ValueError, match="unexpected keyword"):
            http_dispatch.send("http://h/", verb="GET")
        with pytest.raises(ValueError, match="unknown call option 'retries'"):
            http_dispatch.send("http://h/", "GET", {}, {"retries": 3})
        assert broker.queues[http_dispatch.queue_name].qsize() == 0


@pytest.mark.parametrize(("option", "value"), [("timeout", 0), ("timeout", "5"), ("max_attempts", 1.5)])
def test_bad_per_call_options_fail_in_the_caller(option, value):
    with pytest.raises(ValueError, match=f"call option {option}="):
        URL("http://h/", **{option: value})


# -- configuration -----------------------------------------------------------------------------------


def test_defaults_match_the_contract():
    settings = Settings.from_env({})
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert settings.results_url == "redis://127.0.0.1:6379/0"
    assert settings.queue == "dispatch"
    assert settings.timeout == 10
    assert settings.max_attempts == 5
    assert settings.max_response_bytes == 10485760


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCH_BROKER_URL", "http://rabbit"),
        ("DISPATCH_RESULTS_URL", "memcached://x"),
        ("DISPATCH_QUEUE", "bad queue!"),
        ("DISPATCH_TIMEOUT", "soon"),
        ("DISPATCH_TIMEOUT", "-1"),
        ("DISPATCH_MAX_ATTEMPTS", "0"),
        ("DISPATCH_MAX_ATTEMPTS", "2.5"),
        ("DISPATCH_MAX_RESPONSE_BYTES", "10MB"),
    ],
)
def test_unparseable_configuration_names_the_variable(variable, value):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value})


def test_bad_configuration_stops_worker_start_up(tmp_path):
    for command in (
        [sys.executable, "-c", "import dispatch.tasks"],
        [sys.executable, "-m", "dramatiq", "dispatch.tasks"],
    ):
        done = subprocess.run(
            command,
            env={"PATH": "/usr/bin:/bin", "DISPATCH_MAX_ATTEMPTS": "lots"},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode != 0
        assert "DISPATCH_MAX_ATTEMPTS='lots' is invalid: must be a positive integer" in done.stderr


def test_import_dispatch_alone_touches_no_broker():
    code = "import sys, dispatch; print('dispatch.tasks' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"
    assert dispatch.__version__


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


def test_retry_after_accepts_seconds_and_http_dates():
    from dispatch.transport import parse_retry_after

    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCH_RETRY_SCHEDULE", "5,soon"),
        ("DISPATCH_RETRY_SCHEDULE", "-1"),
        ("DISPATCH_DENY_PRIVATE", "maybe"),
        ("DISPATCH_ALLOWED_HOSTS", "10.0.0.0/33"),
        ("DISPATCH_QUEUE_TYPE", "stream"),
        ("DISPATCH_SEND_TIMEOUT", "-3"),
    ],
)
def test_unparseable_reliability_settings_name_the_variable(variable, value):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value})


def test_retry_schedule_parses_and_per_call_schedule_is_checked():
    assert Settings.from_env({"DISPATCH_RETRY_SCHEDULE": "5, 300,1800"}).retry_schedule == (5, 300, 1800)
    assert Settings.from_env({}).retry_schedule == ()
    assert URL("http://h/", retry_schedule=(1, 2)).options == {"retry_schedule": [1, 2]}
    with pytest.raises(ValueError, match="retry_schedule"):
        URL("http://h/", retry_schedule=[1, -5])


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


@pytest.mark.parametrize("options", [[None, None], "ab", [["timeout", 1]]])
def test_options_must_be_a_mapping(options):
    from dispatch.protocol import check_options

    with pytest.raises(ValueError, match="options must be a mapping"):
        check_options(options)


def test_map_through_the_stub_broker_returns_working_handles():
    # dispatch.testing's in-memory broker has no publisher confirms: URL.map falls back to plain enqueues.
    with stub_worker():
        handles = URL("http://127.0.0.1:9/never", max_attempts=1).map([{"n": 1}, {"n": 2}])
        assert [h.args[2] for h in handles] == [{"n": 1}, {"n": 2}]
        for handle in handles:
            with pytest.raises(TransportError, match="1 attempt"):
                handle.get(timeout=10)


def test_a_scheduled_delivery_honours_retry_after_only_up_to_its_cap():
    from dispatch.retries import DeliveryFailed, RetrySchedule

    schedule = RetrySchedule((5, 60), retry_after_max=30, scheduled_retry_after_max=3600)
    assert schedule.next_delay(0, DeliveryFailed("503", retry_after=120)) == 120  # longer than the step: honoured
    assert schedule.next_delay(1, DeliveryFailed("503", retry_after=10**9)) == 3600  # absurd: cut to the cap
    assert schedule.next_delay(1, DeliveryFailed("503")) == 60
    assert schedule.next_delay(2, DeliveryFailed("503")) is None

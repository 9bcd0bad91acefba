"""Odd input ends as the package's own errors: properties (hypothesis) and the cases that once escaped.

* ``parse_answer`` raises only InvalidResponseError, UnknownStatusError or
  RemoteExecuteError, whatever the bytes.
* ``parse_retry_after`` never raises; it returns None or a finite wait
  between 0 and ``MAX_RETRY_AFTER``.
* ``check_url`` raises only ValueError, and a URL it accepts has the same
  scheme, host and port for ``urllib.parse`` and urllib3.
* An IPv6 address embedding a private IPv4 address is refused.
* Per-call options are bounded (``validation.OPTIONS``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import string
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from dispatch.errors import InvalidResponseError, RemoteExecuteError, UnknownStatusError
from dispatch.policy import address_rule
from dispatch.protocol import parse_answer
from dispatch.retries import MAX_RETRY_AFTER, DeliveryFailed, RetrySchedule, parse_retry_after
from dispatch.urlsafety import check_url
from dispatch.validation import (
    MAX_ATTEMPTS,
    MAX_SCHEDULE_DELAY,
    MAX_SCHEDULE_ENTRIES,
    MAX_SCHEDULE_SPAN,
    MAX_TIMEOUT,
    check_options,
)

SETTINGS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- the answer parser ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
answers = st.one_of(
    st.binary(),
    st.builds(
        lambda status, rest: json.dumps({"status": status, **rest}).encode(),
        st.sampled_from(["success", "failure", "pending", ""]) | st.text(max_size=5),
        st.dictionaries(st.sampled_from(["retval", "reason", "status"]), json_values, max_size=3),
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@SETTINGS
@given(answers)
@example(b"[" * 100_000)  # too deep for the decoder: RecursionError, not ValueError
@example(b'{"status": "failure", "reason": ' + b"[" * 990 + b"]" * 990 + b"}")
@example(b"1" * 5000)  # more digits than int() converts
@example(b"\xff\xfe{")
def test_parse_answer_raises_only_protocol_errors(body):
    with contextlib.suppress(InvalidResponseError, UnknownStatusError, RemoteExecuteError):
        parse_answer(body)


# -- Retry-After ----------------------------------------------------------------------------------

http_dates = st.builds(
    lambda day, month, year, rest: f"{day}, 21 {month} {year} {rest} GMT",
    st.sampled_from(["Mon", "Wed", "Xyz", ""]),
    st.sampled_from(["Jan", "Oct", "Foo"]),
    st.integers(-10, 10**12).map(str),
    st.sampled_from(["07:28:00", "99:99:99", "00:00", ""]),
)


@SETTINGS
@given(st.none() | st.text() | st.text(alphabet=string.digits + "²³¹٣ \t") | http_dates)
@example("²")
@example("1" + "0" * 400)
@example("1" + "0" * 5000)
@example("Wed, 21 Oct 99999999999 07:28:00 GMT")
@example("Fri, 31 Dec 9999 23:59:59 GMT")
@example("Mon, 01 Jan 0001 00:00:00 GMT")
def test_parse_retry_after_never_raises_and_stays_in_bounds(value):
    wait = parse_retry_after(value, now=1_700_000_000)
    assert wait is None or (math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER)


@pytest.mark.parametrize(("value", "wait"), [("²", None), ("1" + "0" * 400, MAX_RETRY_AFTER), ("007", 7.0)])
def test_retry_after_values_that_once_escaped(value, wait):
    assert parse_retry_after(value) == wait


def test_a_scheduled_delay_is_bounded_whatever_the_schedule_says():
    schedule = RetrySchedule([1e308, math.inf], retry_after_max=60)
    assert schedule.next_delay(0, DeliveryFailed("x")) == MAX_RETRY_AFTER
    assert schedule.next_delay(1, DeliveryFailed("x")) == MAX_RETRY_AFTER
    assert RetrySchedule([5], 60).next_delay(0, DeliveryFailed("x", retry_after=1e300)) == MAX_RETRY_AFTER


# -- URLs -----------------------------------------------------------------------------------------

url_alphabet = st.sampled_from([*"aAz09.:/@\\?#[]%-_~!$&'()*+,;=", "\u200b", "\u00fc", "\uff0e", "\t", " "])
hosts = st.sampled_from(["example.com", "127.0.0.1", "[::1]", "[64:ff9b::7f00:1]", "m\u00fcnchen.de", "h"])


def tricky_urls():
    noise = st.text(url_alphabet, max_size=12)
    return st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda scheme, a, host, b, port, c: f"{scheme}://{a}{host}{b}{port}{c}",
            st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
            noise,
            hosts,
            noise,
            st.sampled_from(["", ":80", ":0", ":65536", ":-1", ":8080"]),
            noise,
        ),
    )


@SETTINGS
@given(tricky_urls())
@example("http://127.0.0.1:9000\\@93.184.215.14/")
@example("http://x\u200b.com/")
@example("http://a@b@c/")
@example("http://[::1]:80@evil/")
def test_check_url_raises_only_value_error_and_accepts_only_what_both_parsers_agree_on(url):
    try:
        check_url(url)
    except ValueError:
        return
    ours, theirs = parse_url(url), urlsplit(url)
    host = theirs.hostname if ":" not in theirs.hostname else f"[{theirs.hostname}]"
    assert ours.scheme == theirs.scheme.lower()
    assert ours.host == parse_url(f"http://{host}/").host  # the same host, IDNA-encoded as urllib3 sends it
    assert ours.port == theirs.port


# -- embedded IPv4 --------------------------------------------------------------------------------

private_ipv4 = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"),
    st.ip_addresses(network="127.0.0.0/8"),
    st.ip_addresses(network="172.16.0.0/12"),
    st.ip_addresses(network="192.168.0.0/16"),
    st.ip_addresses(network="169.254.0.0/16"),
    st.ip_addresses(network="100.64.0.0/10"),
    st.ip_addresses(network="0.0.0.0/8"),
)


def embeddings(v4: ipaddress.IPv4Address) -> list[ipaddress.IPv6Address]:
    n = int(v4)
    return [
        ipaddress.IPv6Address(0xFFFF << 32 | n),  # mapped
        ipaddress.IPv6Address(0xFFFF << 48 | n),  # SIIT
        ipaddress.IPv6Address(n),  # IPv4-compatible
        ipaddress.IPv6Address(0x0064FF9B << 96 | n),  # NAT64
        ipaddress.IPv6Address(0x0064FF9B0001 << 80 | n),  # local-use NAT64
        ipaddress.IPv6Address(0x2002 << 112 | n << 80 | 0x1234),  # 6to4
    ]


@SETTINGS
@given(private_ipv4, st.integers(0, 5))
def test_any_ipv6_embedding_a_private_ipv4_is_refused(v4, form):
    assert address_rule(embeddings(v4)[form]) is not None


@SETTINGS
@given(st.ip_addresses(v=6))
def test_address_rule_never_raises(address):
    assert address_rule(address) in (
        None,
        "cloud-metadata",
        "loopback",
        "unspecified",
        "link-local",
        "multicast",
        "unique-local",
        "site-local",
        "local-use NAT64",
        "private",
        "non-public",
    )


# -- per-call options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 1e308},
        {"timeout": math.inf},
        {"timeout": math.nan},
        {"timeout": MAX_TIMEOUT + 1},
        {"timeout": 0},
        {"max_attempts": MAX_ATTEMPTS + 1},
        {"max_attempts": 1e308},
        {"max_attempts": math.inf},
        {"max_attempts": 2.5},
        {"retry_schedule": [1] * (MAX_SCHEDULE_ENTRIES + 1)},
        {"retry_schedule": [MAX_SCHEDULE_DELAY + 1]},
        {"retry_schedule": [1e308]},
        {"retry_schedule": [math.nan]},
        {"retry_schedule": [MAX_SCHEDULE_DELAY] * 5},  # 35 days in all
        {"retry_schedule": [True]},
    ],
)
def test_options_past_their_ceilings_are_value_errors(options):
    with pytest.raises(ValueError, match="call option"):
        check_options(options)


def test_options_at_their_ceilings_pass():
    at_ceiling = {
        "timeout": MAX_TIMEOUT,
        "max_attempts": MAX_ATTEMPTS,
        "retry_schedule": [MAX_SCHEDULE_SPAN / MAX_SCHEDULE_ENTRIES] * MAX_SCHEDULE_ENTRIES,
    }
    assert check_options(at_ceiling) == at_ceiling


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["timeout", "max_attempts", "retry_schedule"]),
        st.one_of(
            st.integers(),
            st.floats(),
            st.booleans(),
            st.none(),
            st.text(max_size=3),
            st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=2)), max_size=60),
        ),
    )
)
def test_check_options_raises_only_value_error(options):
    try:
        checked = check_options(options)
    except ValueError:
        return
    for name, value in checked.items():
        if name == "retry_schedule":
            assert len(value) <= MAX_SCHEDULE_ENTRIES and sum(value) <= MAX_SCHEDULE_SPAN
        else:
            assert math.isfinite(value) and value <= {"timeout": MAX_TIMEOUT, "max_attempts": MAX_ATTEMPTS}[name]

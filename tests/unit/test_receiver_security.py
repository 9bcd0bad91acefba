"""Attacks on a signed :class:`dispatch.receiver.Receiver`, served for real over HTTP.

* Malformed signature headers (``webhook-timestamp: ²``) are a 401, never a 500:
  ``signing.verify`` raises only SignatureError whatever the header values are
  (a property checked with hypothesis).
* A captured signed request replayed -- to the same route or another one, to the
  same Receiver or another in the process -- is answered ``409 Conflict`` and the
  function does not run again.  The choice of 409 over 401: the signature *is*
  valid; what is refused is a second delivery of a message already accepted.

Two receivers sharing a Redis replay store (the real Redis) are tested in
tests/integration/test_gateway_security.py.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.receiver import MemoryReplayStore, Receiver, ReplayStoreError
from dispatch.signing import SignatureError, generate_secret, sign_request, signature_headers, verify

from .test_receivers import serving_asgi, serving_wsgi

SECRET = generate_secret()
NOW = 1_700_000_000


def signed(method: str, url: str, params: dict, secret: str = SECRET, msg_id: str | None = None):
    """A prepared request, signed as a sender signs it; send it as many times as you like."""
    in_body = "params" if method == "GET" else "data"
    prepared = requests.Request(method, url, **{in_body: params}).prepare()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    prepared.headers.update(sign_request(secret, msg_id, prepared.method, prepared.url, prepared.body))
    return prepared


def send(prepared: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as session:
        return session.send(prepared, timeout=10)


def recording(calls: list) -> Callable:
    def record(x):
        calls.append(x)
        return x

    return record


SERVERS = {"wsgi": lambda r: serving_wsgi(r), "asgi": lambda r: serving_asgi(r.as_asgi())}


# -- malformed headers are a 401, never a 500 -------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("stamp", ["²", "\u0661\u0667" + "\u0660" * 8, "9" * 5000, "1e9", " 17 ", "-1"])
def test_a_non_ascii_or_huge_timestamp_is_401_not_500(server, stamp):
    calls: list = []
    with SERVERS[server](Receiver(recording(calls), secret=SECRET)) as base:
        prepared = signed("GET", f"{base}/record", {"x": "1"})
        prepared.headers["webhook-timestamp"] = stamp.encode()  # bytes: sent as they are, even if not latin-1
        response = send(prepared)
    assert response.status_code == 401, response.text
    assert "webhook-timestamp" in response.json()["reason"]
    assert calls == []


@pytest.mark.parametrize("server", SERVERS)
def test_a_non_ascii_signature_is_401_not_500(server):
    with SERVERS[server](Receiver(recording([]), secret=SECRET)) as base:
        prepared = signed("POST", f"{base}/record", {"x": "1"})
        prepared.headers["webhook-signature"] = "v1,é+/=".encode()
        response = send(prepared)
    assert response.status_code == 401, response.text


# -- replays ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_replayed_request_is_409_and_the_function_runs_once(server, method):
    calls: list = []
    with SERVERS[server](Receiver(recording(calls), secret=SECRET, replay_store=MemoryReplayStore())) as base:
        prepared = signed(method, f"{base}/record", {"x": "once"})
        first, second = send(prepared), send(prepared)
    assert first.status_code == 200 and first.json()["retval"] == "once"
    assert second.status_code == 409, second.text
    assert "already accepted" in second.json()["reason"]
    assert calls == ["once"]


@pytest.mark.parametrize("server", SERVERS)
def test_a_replay_to_another_route_of_the_same_receiver_is_refused(server):
    # The path is not signed: the same query string signs /record and /other alike.
    calls: list = []
    app = Receiver({"/record": recording(calls), "/other": recording(calls)}, secret=SECRET)
    with SERVERS[server](app) as base:
        original = signed("GET", f"{base}/record", {"x": "1"})
        assert send(original).status_code == 200
        moved = original.copy()
        moved.url = original.url.replace("/record", "/other")
        refused = send(moved)
    assert refused.status_code == 409, refused.text
    assert calls == ["1"]


def test_receivers_of_one_process_share_the_default_store():
    # Flask and Django apps build one Receiver per function: a replay from one to another is refused too.
    calls: list = []
    first, second = Receiver(recording(calls), secret=SECRET), Receiver(recording(calls), secret=SECRET)
    with serving_wsgi(first) as one, serving_wsgi(second) as two:
        original = signed("POST", f"{one}/record", {"x": "1"})
        assert send(original).status_code == 200
        moved = original.copy()
        moved.url = original.url.replace(one, two)
        assert send(moved).status_code == 409
    assert calls == ["1"]


def test_a_refused_signature_does_not_burn_the_id():
    # Someone who knows an id but not the secret cannot make the genuine request look like a replay.
    calls: list = []
    with serving_wsgi(Receiver(recording(calls), secret=SECRET)) as base:
        msg_id = f"msg_{uuid.uuid4().hex}"
        forged = signed("GET", f"{base}/record", {"x": "forged"}, secret=generate_secret(), msg_id=msg_id)
        assert send(forged).status_code == 401
        assert send(signed("GET", f"{base}/record", {"x": "real"}, msg_id=msg_id)).status_code == 200
    assert calls == ["real"]


def test_an_unsigned_receiver_keeps_no_ids():
    store = MemoryReplayStore()
    with serving_wsgi(Receiver(recording([]), replay_store=store)) as base:
        prepared = signed("GET", f"{base}/record", {"x": "1"})
        assert send(prepared).status_code == 200 and send(prepared).status_code == 200
    assert len(store) == 0


@pytest.mark.parametrize("server", SERVERS)
def test_a_store_that_cannot_answer_makes_a_503_with_retry_after(server):
    calls: list = []
    full = MemoryReplayStore(max_entries=1)
    with SERVERS[server](Receiver(recording(calls), secret=SECRET, replay_store=full)) as base:
        assert send(signed("GET", f"{base}/record", {"x": "1"})).status_code == 200
        refused = send(signed("GET", f"{base}/record", {"x": "2"}))
    assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
    assert "replay store is full" in refused.json()["reason"]
    assert calls == ["1"]


def test_the_memory_store_forgets_an_id_once_it_expires():
    clock = [1000.0]
    store = MemoryReplayStore(max_entries=2, clock=lambda: clock[0])
    assert store.add("a", 10) and not store.add("a", 10)
    assert store.add("b", 20)
    with pytest.raises(ReplayStoreError, match="full"):
        store.add("c", 10)
    clock[0] += 10  # "a" has expired, "b" has not
    assert len(store) == 1
    assert store.add("a", 10)
    with pytest.raises(ReplayStoreError, match="full"):
        store.add("c", 10)
    clock[0] += 100
    assert len(store) == 0 and store.add("b", 10)


def test_ids_are_kept_as_long_as_their_timestamp_can_verify():
    # A timestamp up to `tolerance` in the future verifies until timestamp + tolerance.
    seen: list[tuple[str, float]] = []

    class Spy(MemoryReplayStore):
        def add(self, msg_id: str, ttl: float) -> bool:
            seen.append((msg_id, ttl))
            return super().add(msg_id, ttl)

    now = int(time.time())
    with serving_wsgi(Receiver(recording([]), secret=SECRET, tolerance=60, replay_store=Spy())) as base:
        prepared = requests.Request("GET", f"{base}/record", params={"x": "1"}).prepare()
        prepared.headers.update(signature_headers(SECRET, "future", b"x=1", now=now + 60))
        assert send(prepared).status_code == 200
    ((msg_id, ttl),) = seen
    assert msg_id == "future" and 119 <= ttl <= 121


# -- verify() raises only SignatureError, whatever the headers say ----------------------------------

header_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789²³¹ -+.e_,v1=/\u0660\u0661\u0967\uff11", max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.just("9" * 5000),
)
header_value = st.one_of(header_text, st.binary(max_size=60), st.integers(), st.none())


def _sig_like() -> st.SearchStrategy[str]:
    b64ish = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=é ", max_size=60)
    return st.lists(st.builds(lambda v, s: f"{v},{s}", st.sampled_from(["v1", "v2", "", "v1a"]), b64ish)).map(" ".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msg_id=header_value,
    stamp=st.one_of(header_value, st.integers(NOW - 1000, NOW + 1000).map(str)),
    signature=st.one_of(header_value, _sig_like()),
    spelling=st.sampled_from(["webhook-{}", "WEBHOOK-{}", "HTTP_WEBHOOK_{}"]),
    body=st.binary(max_size=40),
)
def test_verify_raises_only_signature_error_for_any_header_values(msg_id, stamp, signature, spelling, body):
    names = {"id": msg_id, "timestamp": stamp, "signature": signature}
    headers = {spelling.format(name.upper() if "HTTP" in spelling else name): value for name, value in names.items()}
    with contextlib.suppress(SignatureError):  # anything else fails the test
        verify(body, headers, SECRET, now=NOW)


@settings(max_examples=300, deadline=None)
@given(msg_id=st.text(min_size=1), body=st.binary(max_size=40), skew=st.integers(-300, 300))
def test_any_text_id_signed_by_us_verifies_or_is_refused_cleanly(msg_id, body, skew):
    # Any text id the sender can sign round-trips; lone surrogates, which cannot be sent, are a SignatureError.
    try:
        headers = signature_headers(SECRET, msg_id, body, now=NOW + skew)
    except UnicodeEncodeError:
        with pytest.raises(SignatureError, match="webhook-id"):
            verify(body, {"webhook-id": msg_id, "webhook-timestamp": str(NOW), "webhook-signature": "v1,AA=="}, SECRET)
        return
    assert verify(body, headers, SECRET, now=NOW) == (msg_id, NOW + skew)

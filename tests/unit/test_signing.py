"""Standard Webhooks signing: known answers, interoperability with the reference library, and every refusal.

Interoperability is checked against ``standardwebhooks`` (the reference
implementation from PyPI) in both directions, not only against our own
``verify``: a receiver in any language uses such a library.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.datastructures import Headers as StarletteHeaders
from werkzeug.datastructures import Headers as WerkzeugHeaders

from dispatch import DispatchError
from dispatch.signing import (
    SignatureError,
    check_secret,
    generate_secret,
    sign,
    sign_request,
    signature_headers,
    signed_payload,
    verify,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000


# -- sign ----------------------------------------------------------------------------------------


def test_sign_matches_the_published_example():
    # The worked example in the Standard Webhooks / Svix documentation.
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_the_whsec_prefix_is_optional():
    assert sign(SECRET, "m", NOW, b"x") == sign(SECRET.removeprefix("whsec_"), "m", NOW, b"x")


def test_signature_headers_carry_id_timestamp_and_signature():
    headers = signature_headers(SECRET, "msg_1", b"x=1", now=NOW)
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign(SECRET, "msg_1", NOW, b"x=1"),
    }


# -- interoperability with the reference library --------------------------------------------------


@pytest.mark.parametrize("body", [b'{"status": "ok"}', '{"city": "Zürich ☃"}'.encode(), b"x=6&y=7", b""])
def test_what_we_sign_the_reference_library_accepts(body):
    headers = signature_headers(SECRET, "msg_interop", body)
    assert Webhook(SECRET).verify(body, headers, json_parse=False) is None


def test_what_the_reference_library_signs_we_accept():
    body = b"x=6&y=7"
    now = datetime.now(tz=timezone.utc)
    headers = {
        "webhook-id": "msg_theirs",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_theirs", now, body.decode()),
    }
    verify(body, headers, SECRET)


def test_a_tampered_body_fails_in_the_reference_library_too():
    headers = signature_headers(SECRET, "msg_1", b"x=6&y=7")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b"x=6&y=8", headers, json_parse=False)


def test_generated_secrets_work_in_the_reference_library():
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b"a=1"
    Webhook(secret).verify(body, signature_headers(secret, "m", body), json_parse=False)


# -- what is signed ------------------------------------------------------------------------------


def test_get_signs_the_query_string_and_post_the_body():
    assert signed_payload("GET", query="x=6&y=7", body=b"ignored") == b"x=6&y=7"
    assert signed_payload("get", query=b"a=%C3%A9") == b"a=%C3%A9"
    assert signed_payload("HEAD", query="q=1") == b"q=1"
    assert signed_payload("POST", query="a=1", body=b"x=6") == b"x=6"
    assert signed_payload("POST", query="a=1", body=None) == b""


def test_sign_request_signs_what_goes_on_the_wire():
    get = sign_request(SECRET, "m1", "GET", "http://h:8/multiply?x=6&y=7#frag", now=NOW)
    assert get["webhook-signature"] == sign(SECRET, "m1", NOW, b"x=6&y=7")
    # requests keeps a form body as str; it is sent UTF-8 encoded
    post = sign_request(SECRET, "m2", "POST", "http://h/multiply?a=1", "name=Zürich", now=NOW)
    assert post["webhook-signature"] == sign(SECRET, "m2", NOW, "name=Zürich".encode())


# -- verify: acceptance ----------------------------------------------------------------------------


def _headers(body: bytes = b"x=1", now: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return signature_headers(secret, "msg_1", body, now=now)


@pytest.mark.parametrize(
    "spell",
    [
        lambda h: h,
        lambda h: {k.upper(): v for k, v in h.items()},
        lambda h: {k.title(): v for k, v in h.items()},
        # a WSGI environ, Django's request.META
        lambda h: {"HTTP_" + k.upper().replace("-", "_"): v for k, v in h.items()} | {"wsgi.input": object()},
        lambda h: WerkzeugHeaders([(k.title(), v) for k, v in h.items()]),  # Flask
        lambda h: StarletteHeaders(raw=[(k.encode(), v.encode()) for k, v in h.items()]),  # FastAPI
        lambda h: {k.encode(): v.encode() for k, v in h.items()},  # raw ASGI names and values
    ],
)
def test_headers_are_found_in_any_frameworks_spelling(spell):
    verify(b"x=1", spell(_headers()), SECRET, now=NOW)


def test_any_of_several_secrets_verifies_for_rotation():
    old, new = generate_secret(), generate_secret()
    verify(b"x=1", _headers(secret=old), [new, old], now=NOW)
    verify(b"x=1", _headers(secret=new), [new, old], now=NOW)


def test_any_of_several_signatures_verifies():
    other = generate_secret()
    headers = signature_headers([other, SECRET], "msg_1", b"x=1", now=NOW)
    assert len(headers["webhook-signature"].split()) == 2
    verify(b"x=1", headers, SECRET, now=NOW)
    verify(b"x=1", headers, other, now=NOW)


def test_unknown_versions_and_garbage_signatures_are_skipped():
    good = _headers()["webhook-signature"]
    headers = _headers() | {"webhook-signature": f"v1a,AAAA nonsense v1,%%% {good}"}
    verify(b"x=1", headers, SECRET, now=NOW)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(skew):
    verify(b"x=1", _headers(now=NOW + skew), SECRET, now=NOW)


# -- verify: refusals ------------------------------------------------------------------------------


def test_signature_error_is_a_dispatch_error():
    assert issubclass(SignatureError, DispatchError)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(name):
    headers = _headers()
    del headers[name]
    with pytest.raises(SignatureError, match=f"missing header\\(s\\) {name}$"):
        verify(b"x=1", headers, SECRET, now=NOW)


def test_an_unsigned_request_names_every_missing_header():
    with pytest.raises(SignatureError, match="missing header\\(s\\) webhook-id, webhook-timestamp, webhook-signature"):
        verify(b"x=1", {"content-type": "text/plain"}, SECRET, now=NOW)


def test_an_old_timestamp_is_refused():
    with pytest.raises(SignatureError, match="webhook-timestamp is 301 s old, more than the 300 s allowed"):
        verify(b"x=1", _headers(now=NOW - 301), SECRET, now=NOW)


def test_a_future_timestamp_is_refused():
    with pytest.raises(SignatureError, match="301 s in the future"):
        verify(b"x=1", _headers(now=NOW + 301), SECRET, now=NOW)


def test_tolerance_is_configurable():
    verify(b"x=1", _headers(now=NOW - 1000), SECRET, tolerance=3600, now=NOW)
    with pytest.raises(SignatureError, match="more than the 10 s allowed"):
        verify(b"x=1", _headers(now=NOW - 11), SECRET, tolerance=10, now=NOW)


@pytest.mark.parametrize("stamp", ["soon", "1.5e9", "-5", ""])
def test_a_malformed_timestamp_is_refused(stamp):
    with pytest.raises(SignatureError, match="webhook-timestamp"):
        verify(b"x=1", _headers() | {"webhook-timestamp": stamp}, SECRET, now=NOW)


def test_a_changed_body_is_refused():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(b"x=2", _headers(b"x=1"), SECRET, now=NOW)


def test_a_changed_message_id_is_refused():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(b"x=1", _headers() | {"webhook-id": "msg_2"}, SECRET, now=NOW)


def test_a_changed_timestamp_is_refused():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(b"x=1", _headers() | {"webhook-timestamp": str(NOW + 1)}, SECRET, now=NOW)


def test_a_signature_by_another_secret_is_refused():
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(b"x=1", _headers(secret=generate_secret()), SECRET, now=NOW)


# -- secrets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        SECRET,
        SECRET.removeprefix("whsec_"),
        generate_secret(64),
        "whsec_" + base64.b64encode(b"k" * 25).decode().rstrip("="),
    ],
    ids=["prefixed", "bare", "64-bytes", "unpadded"],
)
def test_check_secret_accepts_and_returns_valid_secrets(secret):
    assert check_secret(secret) == secret


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("hunter2!", "followed by base64"),
        ("whsec_not base64", "followed by base64"),
        ("whsec_c2hvcnQ=", "at least 24 random bytes, this one has 5"),
        ("", "this one has 0"),
        (b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must be a string"),
    ],
)
def test_check_secret_refuses_unusable_secrets(secret, message):
    with pytest.raises(ValueError, match=message):
        check_secret(secret)


def test_signing_and_verifying_refuse_a_bad_secret():
    with pytest.raises(ValueError, match="base64"):
        sign("not a secret", "m", NOW, b"")
    with pytest.raises(ValueError, match="base64"):
        verify(b"x=1", _headers(), ["not a secret"], now=NOW)
    with pytest.raises(ValueError, match="no signing secret"):
        verify(b"x=1", _headers(), [], now=NOW)

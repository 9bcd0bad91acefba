"""Workers sign every request (Standard Webhooks) and name every call the same way on every attempt."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests
import standardwebhooks

from dispatch.signing import generate_secret, signed_payload, verify

from .support import unique_key

pytestmark = pytest.mark.integration


def test_a_signed_post_verifies_with_the_standard_webhooks_library(make_worker, python_endpoint):
    secret = generate_secret()
    signing = make_worker(DISPATCH_SIGNING_SECRET=secret)
    res = signing.send(python_endpoint.url("/echo"), "POST", {"event": "paid", "amount": 12})
    seen = res.get(timeout=30)
    headers = seen["headers"]
    assert headers["webhook-id"] == res.message_id == headers["idempotency-key"]
    # The library's verify() also parses the body as JSON, which a form body is not,
    # so compare with the signature the library itself computes for these bytes.
    sent_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=timezone.utc)
    expected = standardwebhooks.Webhook(secret).sign(res.message_id, sent_at, seen["raw_body"])
    assert expected in headers["webhook-signature"].split()
    verify(seen["raw_body"].encode(), headers, secret)  # our own verifier agrees
    with pytest.raises(Exception, match="signature"):
        verify(seen["raw_body"].encode() + b"&tampered=1", headers, secret)


def test_a_signed_get_signs_its_query_string(make_worker, python_endpoint):
    old, new = generate_secret(), generate_secret()
    signing = make_worker(DISPATCH_SIGNING_SECRET=f"{new} {old}")  # rotation: signed with both
    seen = signing.send(python_endpoint.url("/echo?a=1"), "GET", {"b": "ü"}).get(timeout=30)
    payload = signed_payload("GET", query=seen["raw_query"], body=b"")
    verify(payload, seen["headers"], [old])
    verify(payload, seen["headers"], [new])
    sent_at = datetime.fromtimestamp(int(seen["headers"]["webhook-timestamp"]), tz=timezone.utc)
    assert (
        standardwebhooks.Webhook(old).sign(seen["headers"]["webhook-id"], sent_at, payload.decode())
        in seen["headers"]["webhook-signature"].split()
    )


def test_idempotency_key_is_the_same_on_every_attempt_and_redelivery(make_worker, python_endpoint):
    scheduled = make_worker(DISPATCH_MAX_ATTEMPTS="2", DISPATCH_RETRY_SCHEDULE="0.2")
    key = unique_key()
    res = scheduled.send(python_endpoint.url("/flaky"), params={"key": key, "fail": 3})
    assert res.get(timeout=30) == 4  # 2 quick attempts, a scheduled delivery, 2 more
    ids = requests.get(python_endpoint.url(f"/call_ids/{key}"), timeout=5).json()["retval"]
    assert ids == [res.message_id] * 4


def test_unsigned_workers_send_no_signature(worker, python_endpoint):
    from dispatch import URL

    headers = URL(python_endpoint.url("/echo")).send().get(timeout=10)["headers"]
    assert "webhook-signature" not in headers

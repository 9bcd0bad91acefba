"""A failure's message is stored redacted: an endpoint that echoes a secret back does not get it into the store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatch import URL, RemoteExecuteError
from dispatch.redaction import MASK, register_secret
from dispatch.testing import stub_worker
from tests.support import serving_wsgi

SECRET = "shop-token-5c1e7a9b"


def _echoing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({"status": "failure", "reason": f"bad token {SECRET}"}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_an_echoed_secret_is_masked_in_the_stored_failure() -> None:
    register_secret(SECRET)
    with serving_wsgi(_echoing_app) as base, stub_worker():
        res = URL(f"{base}/echo").send(x=1)
        with pytest.raises(RemoteExecuteError) as raised:
            res.get(timeout=10)
    assert SECRET not in str(raised.value)
    assert f"bad token {MASK}" in str(raised.value)

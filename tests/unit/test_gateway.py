"""The HTTP gateway's start-up checks: it refuses to serve without a proper token, or with actors it cannot apply;
and its destination check, which waits for the resolver no longer than ``DISPATCH_SEND_TIMEOUT``.

The gateway end to end (real gateway processes, a real worker) is in
tests/integration/test_gateway.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from fastapi import HTTPException

from dispatch.gateway.service import check_destination
from dispatch.policy import DestinationPolicy
from tests.support import free_port


@pytest.mark.parametrize(("token", "message"), [(None, "DISPATCH_GATEWAY_TOKEN is not set"), ("short", "at least 16")])
def test_gateway_refuses_to_start_without_a_proper_token(token, message):
    environ = {k: v for k, v in os.environ.items() if k != "DISPATCH_GATEWAY_TOKEN"}
    if token:
        environ["DISPATCH_GATEWAY_TOKEN"] = token
    script = f"from dispatch.gateway import serve; serve('127.0.0.1', {free_port()})"
    out = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "ConfigurationError" in out.stderr and message in out.stderr


ACTORS = "tests.integration.gateway_actors"


@pytest.mark.parametrize(
    ("actors", "message"),
    [
        ("no_such_module:add", "cannot import no_such_module (for no_such_module:add): ModuleNotFoundError"),
        (f"{ACTORS}:subtract", f"module {ACTORS} has no subtract (for {ACTORS}:subtract)"),
        (f"{ACTORS}:QUEUE", f"{ACTORS}:QUEUE is not a dramatiq actor"),
        (f"{ACTORS}:forgetful", f"{ACTORS}:forgetful does not store results"),
        (
            "dispatch.tasks:http_dispatch",
            "dispatch.tasks:http_dispatch performs HTTP calls; queue those with POST /calls",
        ),
        ("not a path", "'not a path' is not a module:actor path"),
    ],
)
def test_gateway_refuses_to_start_with_an_actor_it_cannot_apply(actors, message):
    # Nothing connects: the broker and results store are only built, and start-up fails before serving.
    environ = {
        **os.environ,
        "DISPATCH_GATEWAY_TOKEN": "test-token-0123456789abcdef",
        "DISPATCH_GATEWAY_ACTORS": f"{ACTORS}:add,{actors}",
    }
    script = f"from dispatch.gateway import serve; serve('127.0.0.1', {free_port()})"
    out = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "ConfigurationError" in out.stderr and message in out.stderr, out.stderr[-2000:]


def test_a_hanging_resolver_gets_the_caller_a_503_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo has no timeout of its own: the request thread would wait for as long as the resolver likes."""
    answered = threading.Event()

    def hanging(*args: Any, **kwargs: Any) -> Any:
        answered.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        with pytest.raises(HTTPException) as answer:
            check_destination(DestinationPolicy(deny_private=True), "http://user:pw-secret@slow.example/x", 1.0)
    finally:
        answered.set()  # the lookup's thread goes back to the pool
    assert time.monotonic() - started < 3
    assert answer.value.status_code == 503
    assert answer.value.detail == "cannot resolve http://user:***@slow.example/x right now: no answer in 1s"


def test_the_destination_check_still_refuses_and_rejects() -> None:
    policy = DestinationPolicy(deny_private=True)
    with pytest.raises(HTTPException) as refused:
        check_destination(policy, "http://127.0.0.1:9/x", 1.0)
    assert refused.value.status_code == 403 and "loopback" in refused.value.detail
    check_destination(DestinationPolicy(), "http://no-such-host.invalid/x", 1.0)  # no policy: nothing looked up

"""The HTTP gateway's start-up checks: it refuses to serve without a proper token, or with actors it cannot apply.

The gateway end to end (real gateway processes, a real worker) is in
tests/integration/test_gateway.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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

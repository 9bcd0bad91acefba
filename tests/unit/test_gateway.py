"""The HTTP gateway's start-up checks: it refuses to serve without a proper token.

The gateway end to end (real gateway processes, a real worker) is in
tests/integration/test_gateway.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.support import free_port


@pytest.mark.parametrize(("token", "message"), [(None, "DISPATCH_GATEWAY_TOKEN is not set"), ("short", "at least 16")])
def test_gateway_refuses_to_start_without_a_proper_token(token, message):
    environ = {k: v for k, v in os.environ.items() if k != "DISPATCH_GATEWAY_TOKEN"}
    if token:
        environ["DISPATCH_GATEWAY_TOKEN"] = token
    script = f"from dispatch.gateway import serve; serve('127.0.0.1', {free_port()})"
    out = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "ConfigurationError" in out.stderr and message in out.stderr

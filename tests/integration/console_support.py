"""A real ``dispatch gateway`` process serving the console, and a scripted sign-in, for the console's tests."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import requests

from .support import ROOT, ServedProcess, free_port

TOKEN = "console-token-0123456789abcdef"
OTHER_TOKEN = "console-other-fedcba9876543210"


class ConsoleGateway(ServedProcess):
    """``dispatch gateway`` (the CLI, as an operator starts it) on a free port, with ``env`` on top of the tests'."""

    def __init__(self, log_path: Path, **env: str) -> None:
        port = free_port()
        super().__init__(
            [sys.executable, "-m", "dispatch.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)],
            {**os.environ, "DISPATCH_GATEWAY_TOKEN": f"{TOKEN},{OTHER_TOKEN}", **env},
            log_path,
            "/console/sign-in",
            port=port,
            name="gateway",
            cwd=ROOT,
        )
        self.console = f"{self.base}/console"

    def signed_in(self, token: str = TOKEN) -> requests.Session:
        """A client signed in through the form, as a browser is: it holds the session cookie."""
        client = requests.Session()
        form = client.get(self.console + "/sign-in", timeout=10)
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce, form.text
        answer = client.post(
            self.console + "/sign-in", data={"token": token, "nonce": nonce[1], "next": "/console/"}, timeout=10
        )
        assert answer.ok and "Overview" in answer.text, answer.text
        return client


def csrf_of(page: str) -> str:
    """The CSRF token in a console page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]

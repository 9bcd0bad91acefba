"""A real ``dispatch gateway`` process serving the console, and a scripted sign-in, for the console's tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from .support import ROOT, free_port, wait_for

TOKEN = "console-token-0123456789abcdef"
OTHER_TOKEN = "console-other-fedcba9876543210"


class ConsoleGateway:
    """``dispatch gateway`` (the CLI, as an operator starts it) on a free port, with ``env`` on top of the tests'."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.console = f"{self.base}/console"
        self.log_path = log_path
        self.log_file = open(log_path, "w")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dispatch.cli", "gateway", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, "DISPATCH_GATEWAY_TOKEN": f"{TOKEN},{OTHER_TOKEN}", **env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_for(self._up, 30, "the gateway to answer")

    def _up(self) -> bool:
        assert self.process.poll() is None, f"gateway exited: {self.log_path.read_text()}"
        try:
            return requests.get(self.console + "/sign-in", timeout=1).ok
        except requests.ConnectionError:
            return False

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

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log_file.close()


def csrf_of(page: str) -> str:
    """The CSRF token in a console page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]

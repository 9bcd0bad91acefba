"""What unit tests share: a real HTTP server in a thread that answers with what it saw."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Recorder(BaseHTTPRequestHandler):
    """Answers success with what it saw; ``/redirect/<code>?to=URL`` redirects instead (``to=self``: a loop)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        seen = {
            "method": self.command,
            "target": self.path,
            "body": body,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "client_port": self.client_address[1],
        }
        self.server.seen.append(seen)
        if self.path.startswith("/redirect/"):
            code = int(self.path.split("/")[2].split("?")[0])
            self.send_response(code)
            to = self.path.split("to=", 1)[1]
            self.send_header("Location", self.path if to == "self" else to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = json.dumps({"status": "success", "retval": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()

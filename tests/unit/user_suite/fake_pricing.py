"""A fake pricing service for the user's tests: a real HTTP server in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

ROUTES = {
    "/multiply": lambda args: int(args["x"]) * int(args["y"]),
    "/divide": lambda args: int(args["x"]) / int(args["y"]),
    "/upper": lambda args: args["name"].upper(),
    "/shipped": lambda args: "noted",
}


class FakePricing:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.answer(urlsplit(self.path).query)

            def do_POST(self):
                self.answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())

            def answer(self, encoded: str) -> None:
                path, args = urlsplit(self.path).path, dict(parse_qsl(encoded))
                service.requests.append((self.command, path, args))
                try:
                    payload = {"status": "success", "retval": ROUTES[path](args)}
                except Exception as exc:
                    payload = {"status": "failure", "reason": str(exc)}
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def running() -> Iterator[FakePricing]:
    service = FakePricing()
    thread = threading.Thread(target=service.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.server.shutdown()
        service.server.server_close()

"""A callback-protocol endpoint for the integration tests, run as its own process.

    python tests/integration/endpoints/endpoint.py PORT

Routes (same as endpoint.js, so tests can run against both):
  /multiply?x=&y=         success, retval x*y
  /fail?reason=           failure with that reason
  /empty /notjson /array /unknown   protocol violations
  /status/<code>[?retry_after=V]   answers that HTTP status (with a Retry-After header)
  /redirect?to=URL        302 to URL (Python endpoint only)
  /echo                   success, retval = what arrived (method, path, query, form, headers; raw_query
                          and raw_body on the Python endpoint)
  /flaky?key=K&fail=N&code=C[&retry_after=V]   C for the first N hits of K, then success (retval = hit number)
  /hits/<key>             how many requests carried ?key=<key> (any route counts them)
  /call_ids/<key>         their Idempotency-Key headers, in order (Python endpoint only)
  /slow?ms=N              success after N ms
  /big?bytes=N[&chunked=1]    success, retval a string of N "x"
  /reset                  closes the connection without answering
  /health                 200
"""

import json
import socket
import struct
import sys
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

hits = Counter()
call_ids = defaultdict(list)  # key -> the Idempotency-Key of every request that carried it
hits_lock = threading.Lock()


def single(values):
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def answer(self, code=200, payload=None, raw=None, chunked=False, headers=()):
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 65536):
                part = body[i : i + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def success(self, retval, **kw):
        self.answer(200, {"status": "success", "retval": retval}, **kw)

    def route(self):
        parts = urlsplit(self.path)
        query = single(parse_qs(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = single(parse_qs(body, keep_blank_values=True))
        args = {**query, **form}
        path = parts.path.strip("/").split("/")
        name = path[0]
        if "key" in args:
            with hits_lock:
                hits[args["key"]] += 1
                call_ids[args["key"]].append(self.headers.get("Idempotency-Key"))

        if name == "multiply":
            self.success(int(args["x"]) * int(args["y"]))
        elif name == "fail":
            self.answer(200, {"status": "failure", "reason": args.get("reason", "it broke")})
        elif name == "empty":
            self.answer(200, raw=b"")
        elif name == "notjson":
            self.answer(200, raw=b"<html>not json</html>")
        elif name == "array":
            self.answer(200, [1, 2, 3])
        elif name == "unknown":
            self.answer(200, {"status": "maybe", "retval": 1})
        elif name == "status":
            headers = [("Retry-After", args["retry_after"])] if "retry_after" in args else []
            self.answer(int(path[1]), {"status": "failure", "reason": "status " + path[1]}, headers=headers)
        elif name == "echo":
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = {"method": self.command, "path": parts.path, "query": query, "form": form, "headers": headers}
            self.success({**seen, "raw_query": parts.query, "raw_body": body})
        elif name == "flaky":
            with hits_lock:
                n = hits[args["key"]]
            if n <= int(args.get("fail", 0)):
                headers = [("Retry-After", args["retry_after"])] if "retry_after" in args else []
                self.answer(int(args.get("code", 503)), {"status": "failure", "reason": "busy"}, headers=headers)
            else:
                self.success(n)
        elif name == "hits":
            with hits_lock:
                self.success(hits[path[1]])
        elif name == "call_ids":
            with hits_lock:
                self.success(call_ids[path[1]])
        elif name == "slow":
            time.sleep(int(args.get("ms", 1000)) / 1000)
            self.success("slow")
        elif name == "big":
            self.success("x" * int(args["bytes"]), chunked=bool(args.get("chunked")))
        elif name == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif name == "redirect":
            self.answer(302, {}, headers=[("Location", args["to"])])
        elif name == "health":
            self.answer(200, {"status": "success", "retval": "ok"})
        else:
            self.answer(404, {"status": "failure", "reason": "no such route"})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out on purpose hang up on us


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()

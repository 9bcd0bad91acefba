"""A receiver in plain Python, standard library only.

    python examples/receivers/plain_python.py [PORT [HOST]]    (default 8000 127.0.0.1)

GET or POST /multiply?x=10&y=10  ->  {"status": "success", "retval": 100}
GET or POST /divide?x=1&y=0      ->  {"status": "failure", "reason": "division by zero"}
"""

import json
import sys
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, make_server


def multiply(x, y):
    return int(x) * int(y)


def divide(x, y):
    return int(x) / int(y)


TASKS = {"/multiply": multiply, "/divide": divide}


def app(environ, start_response):
    args = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        args.update(parse_qsl(environ["wsgi.input"].read(length).decode()))

    task = TASKS.get(environ["PATH_INFO"])
    if task is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"status": "failure", "reason": "no such task"}']
    try:
        answer = {"status": "success", "retval": task(**args)}
    except Exception as exc:
        answer = {"status": "failure", "reason": str(exc)}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    print(f"receiver listening on http://{host}:{port}", flush=True)
    make_server(host, port, app, handler_class=QuietHandler).serve_forever()

"""A Flask app whose endpoints are plain functions, served by dispatch.receiver.

    python examples/receivers/flask_app.py [PORT]          (default 8000)

With DISPATCH_SIGNING_SECRET=whsec_... in the environment, every call must be
signed with that secret (docs/security.md, "Signed calls"); unsigned ones get HTTP 401.

GET or POST /multiply?x=6&y=7   ->  {"status": "success", "retval": 42}
GET or POST /divide?x=1&y=0     ->  {"status": "failure", "reason": "division by zero"}
GET or POST /echo?any=thing     ->  {"status": "success", "retval": {"any": "thing"}}
"""

import os
import sys

from flask import Flask

from dispatch.receiver import Receiver


def multiply(x, y):
    return int(x) * int(y)


def divide(x, y):
    return int(x) / int(y)


def echo(**args):
    return args


app = Flask(__name__)
secret = os.environ.get("DISPATCH_SIGNING_SECRET") or None
for func in (multiply, divide, echo):
    app.add_url_rule(f"/{func.__name__}", view_func=Receiver(func, secret=secret).flask_view())


@app.get("/health")
def health():
    return {"status": "success", "retval": "ok"}


if __name__ == "__main__":
    app.run("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000)

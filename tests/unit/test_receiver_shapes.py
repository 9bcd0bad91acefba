"""Every shape of call the sender makes, answered by a :class:`dispatch.receiver.Receiver` (issue 21).

GET carries its arguments in the query string; POST, PUT, PATCH and DELETE in a
form-encoded or a JSON body (``URL(u, "PUT", body="json")``).  A JSON object's
members arrive with their JSON types; a form's values as strings.  The
signature covers the body as sent, and a body that cannot carry arguments is
refused with a ``failure`` answer saying why.  Served for real over HTTP by
wsgiref and uvicorn, and through the Flask adapter.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from dispatch.receiver import METHODS, Receiver
from dispatch.signing import sign_request
from dispatch.validation import CALL_METHODS as SENT_METHODS
from tests.support import SIGNING_SECRET, serving_asgi, serving_wsgi

BODY_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
SERVERS = {"wsgi": lambda r: serving_wsgi(r), "asgi": lambda r: serving_asgi(r.as_asgi())}
#: Every JSON type, and text beyond ASCII.
TYPED = {"n": 6, "f": 1.5, "flag": True, "nothing": None, "items": [1, "a"], "obj": {"k": [1]}, "text": "Zürich ☃"}


def echo(**args):
    return args


def multiply(x, y):
    return x * y


def signed(method: str, url: str, **request_kwargs) -> requests.PreparedRequest:
    """A request signed as the worker signs it: over its body, or its query string for GET."""
    prepared = requests.Request(method, url, **request_kwargs).prepare()
    msg_id = f"msg_{uuid.uuid4().hex}"
    prepared.headers.update(sign_request(SIGNING_SECRET, msg_id, prepared.method, prepared.url, prepared.body))
    return prepared


def send(prepared: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as session:
        return session.send(prepared, timeout=10)


def test_a_receiver_answers_every_method_a_call_may_use():
    assert set(METHODS) == SENT_METHODS


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize("method", BODY_METHODS)
def test_a_json_body_gives_arguments_their_json_types(server, method):
    with SERVERS[server](Receiver(echo)) as base:
        answer = requests.request(method, f"{base}/echo?ignored=1", json=TYPED, timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"status": "success", "retval": TYPED})


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize("method", BODY_METHODS)
def test_a_form_body_gives_string_arguments(server, method):
    sent = {"x": "6", "tags": ["a", "b"], "city": "Zürich ☃", "empty": ""}
    with SERVERS[server](Receiver(echo)) as base:
        answer = requests.request(method, f"{base}/echo?ignored=1", data=sent, timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"status": "success", "retval": sent})


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain", None])
def test_an_empty_body_means_no_arguments(content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    with serving_wsgi(Receiver(echo)) as base:
        answer = requests.delete(f"{base}/echo?ignored=1", headers=headers, timeout=10)
    assert answer.json() == {"status": "success", "retval": {}}


def test_json_with_a_charset_is_json():
    with serving_wsgi(Receiver(multiply)) as base:
        answer = requests.put(
            base, data=b'{"x": 6, "y": 7}', headers={"Content-Type": "Application/JSON; charset=utf-8"}, timeout=10
        )
    assert answer.json() == {"status": "success", "retval": 42}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "the body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
        (b"[6, 7]", "a JSON body must be an object of arguments, not an array"),
        (b'"x=6"', "a JSON body must be an object of arguments, not a string"),
        (b"null", "a JSON body must be an object of arguments, not null"),
        (b'{"x": NaN, "y": 1}', "the body is not valid JSON: NaN is not a JSON value"),
        (b'{"x": "\xff"}', "the body is not valid JSON: 'utf-8' codec can't decode byte 0xff"),
    ],
    ids=["truncated", "array", "string", "null", "nan", "not-utf8"],
)
@pytest.mark.parametrize("server", list(SERVERS))
def test_a_json_body_that_is_not_an_object_is_a_400_with_the_reason(server, body, reason):
    with SERVERS[server](Receiver(multiply)) as base:
        answer = requests.patch(base, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["status"] == "failure" and answer.json()["reason"].startswith(reason)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"x": 6}, "bad arguments for multiply(): missing a required argument: 'y'"),
        ({"x": 6, "y": 7, "z": 8}, "bad arguments for multiply(): got an unexpected keyword argument 'z'"),
    ],
)
@pytest.mark.parametrize("shape", ["json", "data"])
def test_missing_or_unexpected_arguments_are_a_failure_with_the_reason_and_the_function_never_runs(
    shape, arguments, reason
):
    calls = []

    def multiply(x, y):
        calls.append((x, y))
        return x * y

    with serving_wsgi(Receiver(multiply)) as base:
        answer = requests.put(base, timeout=10, **{shape: arguments})
    assert (answer.status_code, answer.json()) == (200, {"status": "failure", "reason": reason})
    assert calls == []


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize("method", BODY_METHODS)
def test_a_signed_json_body_is_verified_over_the_bytes_sent(server, method):
    with SERVERS[server](Receiver(echo, secret=SIGNING_SECRET)) as base:
        good = send(signed(method, f"{base}/echo", json=TYPED))
        tampered = signed(method, f"{base}/echo", json={"n": 6})
        tampered.body = tampered.body.replace(b"6", b"7")  # same length
        refused = send(tampered)
        # The URL's own query is neither signed nor read on a body call: adding one changes nothing.
        extra = signed(method, f"{base}/echo", json={"n": 6})
        extra.url += "?n=7"
        with_query = send(extra)
    assert (good.status_code, good.json()["retval"]) == (200, TYPED)
    assert refused.status_code == 401 and refused.json()["reason"].startswith("signature check failed: no signature")
    assert (with_query.status_code, with_query.json()["retval"]) == (200, {"n": 6})


@pytest.mark.parametrize("method", ["GET", *BODY_METHODS])
def test_a_signed_form_call_of_every_method_is_answered(method):
    in_request = "params" if method == "GET" else "data"
    sent = {"x": "6", "tags": ["a", "b"], "city": "Zürich ☃"}
    with serving_wsgi(Receiver(echo, secret=SIGNING_SECRET)) as base:
        answer = send(signed(method, base, **{in_request: sent}))
    assert answer.json() == {"status": "success", "retval": sent}


def test_the_flask_adapter_takes_every_method_and_both_bodies():
    from flask import Flask

    app = Flask(__name__)
    app.add_url_rule("/echo", view_func=Receiver(echo).flask_view())
    client = app.test_client()
    assert client.get("/echo?x=6").json == {"status": "success", "retval": {"x": "6"}}
    for method in BODY_METHODS:
        assert client.open("/echo", method=method, json=TYPED).json == {"status": "success", "retval": TYPED}
        assert client.open("/echo", method=method, data={"x": "6"}).json == {"status": "success", "retval": {"x": "6"}}
    refused = client.open("/echo", method="OPTIONS")
    assert refused.status_code == 200 and "PATCH" in refused.headers["Allow"]  # Flask answers OPTIONS itself

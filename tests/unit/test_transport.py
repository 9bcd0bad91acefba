"""The HTTP attempt in detail, against a real server in a thread: proxies, credentials, redirects, keep-alive.

These are the things requests used to do for us; the transport now does
them itself on urllib3 (see dispatch/transport/), so each is pinned here.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator

import certifi
import pytest

from dispatch.destinations import load_destinations
from dispatch.errors import BadStatusError
from dispatch.retries import AttemptFailed
from dispatch.signing import generate_secret, verify
from dispatch.transport import MAX_REDIRECTS, AttemptObserver, Request, Transport, WireRequest


def call(transport: Transport, url: str, method: str = "GET", params: dict | None = None, **shape) -> dict:
    request = Request(url, method, params or {}, timeout=5, max_response_bytes=100_000, call_id="call-1", **shape)
    return json.loads(transport.attempt(request).body)["retval"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_json_body_and_the_calls_headers_go_on_the_wire(server, method):
    params = {"order": {"id": 7}, "tags": ["a", "ü"], "none": None}
    seen = call(Transport(), f"{server.base}/hook", method, params, headers={"X-Tenant": "acme"}, body_format="json")
    assert seen["method"] == method
    assert json.loads(seen["body"]) == params
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["x-tenant"] == "acme"
    assert seen["headers"]["idempotency-key"] == "call-1"


def test_file_headers_win_and_the_shaping_hook_is_signed(server, tmp_path):
    secret = generate_secret()
    port = server.server_address[1]
    path = tmp_path / "destinations.toml"
    path.write_text(
        f'[destinations."127.0.0.1:{port}"]\nheaders = {{ X-Tenant = "file" }}\nsigning_secret = "{secret}"\n'
    )
    transport = Transport(signing_secrets=[generate_secret()], destinations=load_destinations(str(path)))

    def shape(wire: WireRequest) -> WireRequest:
        assert wire.headers["X-Tenant"] == "file"  # the hook sees the request with the file's headers
        wire.body = b'{"rewritten":true}'
        wire.headers["X-Hook"] = "1"
        return wire

    request = Request(
        f"{server.base}/hook", "POST", {"a": 1}, 5, 100_000, "call-1", headers={"X-Tenant": "call"}, body_format="json"
    )
    answer = transport.attempt(request, shape)
    seen = json.loads(answer.body)["retval"]
    assert answer.status == 200 and answer.headers["content-length"] == str(len(answer.body))
    assert (seen["headers"]["x-tenant"], seen["headers"]["x-hook"], seen["body"]) == ("file", "1", '{"rewritten":true}')
    assert verify(seen["body"].encode(), seen["headers"], secret)[0] == "call-1"  # the host's own secret


def test_a_proxy_from_the_environment_is_used(monkeypatch, server):
    monkeypatch.setenv("http_proxy", server.base)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    seen = call(Transport(), "http://hooks.invalid/hook", params={"x": 1})
    assert seen["target"] == "http://hooks.invalid/hook?x=1"  # the absolute form a forward proxy gets
    assert seen["headers"]["host"] == "hooks.invalid"


def test_no_proxy_hosts_are_reached_directly(monkeypatch, server):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert call(Transport(), f"{server.base}/hook")["target"] == "/hook"


def test_credentials_in_the_url_become_basic_auth_and_leave_the_request_line(server):
    url = server.base.replace("http://", "http://us%40er:p%3Ass@") + "/hook?a=1"
    seen = call(Transport(), url)
    assert seen["target"] == "/hook?a=1"
    assert seen["headers"]["authorization"] == "Basic " + base64.b64encode(b"us@er:p:ss").decode()


def test_credentials_stay_with_their_host_across_redirects(server):
    port = server.server_address[1]
    with_credentials = f"http://user:secret@127.0.0.1:{port}"
    same_host = call(Transport(), f"{with_credentials}/redirect/302?to=/done")
    assert same_host["headers"]["authorization"].startswith("Basic ")
    other_host = call(Transport(), f"{with_credentials}/redirect/302?to=http://localhost:{port}/done")
    assert other_host["target"] == "/done" and "authorization" not in other_host["headers"]


def test_a_303_after_a_post_is_followed_with_a_get_and_no_body(server):
    seen = call(Transport(), f"{server.base}/redirect/303?to=/done", "POST", {"x": 1})
    assert (seen["method"], seen["target"], seen["body"]) == ("GET", "/done", "")
    assert "content-type" not in seen["headers"]
    assert seen["headers"]["idempotency-key"] == "call-1"


def test_a_307_keeps_the_method_and_the_form_body(server):
    seen = call(Transport(), f"{server.base}/redirect/307?to=/done", "POST", {"x": 1})
    assert (seen["method"], seen["target"], seen["body"]) == ("POST", "/done", "x=1")
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_a_redirect_loop_is_a_final_error_not_a_hang(server):
    with pytest.raises(BadStatusError, match=f"more than {MAX_REDIRECTS} redirects"):
        call(Transport(), f"{server.base}/redirect/302?to=self")
    assert len(server.seen) == MAX_REDIRECTS + 1


def test_connections_are_kept_alive_between_calls(server):
    transport = Transport()
    ports = {call(transport, f"{server.base}/hook")["client_port"] for _ in range(5)}
    assert len(ports) == 1


def test_params_encode_as_requests_did():
    request = Request(
        "http://h.example/p?a=1",
        "GET",
        {"b": True, "c": [1, None, "x y"], "d": None, "é": "ü"},
        timeout=1,
        max_response_bytes=1,
    )
    assert Transport().prepare(request).url == "http://h.example/p?a=1&b=True&c=1&c=x+y&%C3%A9=%C3%BC"


def test_certificates_are_checked_against_the_bundle_requests_would_use(monkeypatch, tmp_path):
    bundle = tmp_path / "corporate-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    pool = Transport().pools.connection_from_url("https://hooks.example/")
    assert (pool.ca_certs, pool.cert_reqs) == (str(bundle), "CERT_REQUIRED")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert Transport().pools.connection_from_url("https://hooks.example/").ca_certs == certifi.where()


class Recorder:
    """An attempt observer that writes down what it is told."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    @contextlib.contextmanager
    def observe(self, method: str, url: str) -> Iterator[Recorder]:
        self.log.append((self.name, "start", method, url))
        try:
            yield self
        except Exception as exc:
            self.log.append((self.name, "failed", type(exc).__name__))
            raise
        else:
            self.log.append((self.name, "ok"))

    def answered(self, status: int) -> None:
        self.log.append((self.name, "answered", status))


def test_every_observer_sees_each_attempt_its_statuses_and_how_it_ended(server):
    log: list = []
    observers: list[AttemptObserver] = [Recorder("outer", log), Recorder("inner", log)]
    transport = Transport(observers=observers)
    url = f"{server.base}/redirect/302?to=/done"
    call(transport, url)
    assert log == [
        ("outer", "start", "GET", url),
        ("inner", "start", "GET", url),
        *[(name, "answered", status) for status in (302, 200) for name in ("outer", "inner")],
        ("inner", "ok"),
        ("outer", "ok"),
    ]
    log.clear()
    with pytest.raises(AttemptFailed):
        call(transport, "http://127.0.0.1:9/refused")  # nothing listens there
    assert log[2:] == [("inner", "failed", "AttemptFailed"), ("outer", "failed", "AttemptFailed")]

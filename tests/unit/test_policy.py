"""The destination policy in detail: address rules, pinning, TLS, allow-lists.

The end-to-end refusals (no request sent, redirects re-checked) are in
test_reliability.py against a real worker; here, the mechanics.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from urllib3.util import parse_url

from dispatch.errors import DestinationRefused
from dispatch.policy import DestinationPolicy, address_rule, parse_allowed
from dispatch.transport import Request, Transport


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique-local"),
        ("169.254.169.254", "cloud-metadata"),
        ("fd00:ec2::254", "cloud-metadata"),
        ("100.100.100.200", "cloud-metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-public"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_rules(address, rule):
    assert address_rule(ipaddress.ip_address(address)) == rule


def test_allowed_hosts_parse_names_addresses_and_networks():
    names, networks = parse_allowed(["hooks.internal", "10.0.0.0/8", "192.168.1.5", " "])
    assert names == {"hooks.internal"}
    assert [str(n) for n in networks] == ["10.0.0.0/8", "192.168.1.5/32"]
    with pytest.raises(ValueError, match="neither a host name"):
        parse_allowed(["bad/host"])


def fake_dns(monkeypatch, answers: dict[str, list[str]]):
    """Make getaddrinfo answer ``answers[host]`` in turn (the last one repeats); numbers resolve as themselves."""
    real = socket.getaddrinfo
    calls: dict[str, int] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        n = calls[host] = calls.get(host, 0) + 1
        address = answers[host][min(n, len(answers[host])) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_refuses_a_name_that_resolves_to_a_private_address(monkeypatch):
    fake_dns(monkeypatch, {"innocent.example": ["10.0.0.7"]})
    with pytest.raises(DestinationRefused, match=r"innocent\.example resolves to 10\.0\.0\.7, a private address"):
        DestinationPolicy(deny_private=True).check("http://innocent.example/hook")


def test_allowed_names_and_networks_pass():
    policy = DestinationPolicy(True, *parse_allowed(["localhost", "127.0.0.0/8"]))
    policy.check("http://localhost:1/")
    policy.check("http://127.0.0.9:1/")
    assert not DestinationPolicy().active


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self):
        Recorder.seen.append((self.connection.getsockname()[0], self.headers["Host"]))
        body = b'{"status": "success", "retval": "pinned"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_connects_to_the_address_that_was_checked_not_a_rebound_one(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.2", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        # First answer (checked, allowed): 127.0.0.2.  Any later lookup would say 127.0.0.1.
        lookups = fake_dns(monkeypatch, {"rebind.example": ["127.0.0.2", "127.0.0.1"]})
        transport = Transport(DestinationPolicy(True, *parse_allowed(["127.0.0.2/32"])))
        request = Request(f"http://rebind.example:{port}/x", "GET", {}, timeout=5, max_response_bytes=1000)
        assert transport.attempt(request).body == b'{"status": "success", "retval": "pinned"}'
        assert Recorder.seen[-1] == ("127.0.0.2", f"rebind.example:{port}")
        assert lookups["rebind.example"] == 1
    finally:
        server.shutdown()


def test_https_keeps_certificate_verification_on_the_host_name(monkeypatch):
    fake_dns(monkeypatch, {"api.example": ["93.184.216.34"]})
    transport = Transport(DestinationPolicy(deny_private=True))
    pool, host = transport.policy.pinned_pool(transport.pools, parse_url("https://api.example/hook"))
    assert pool.host == "93.184.216.34"
    assert pool.conn_kw["server_hostname"] == "api.example"
    assert pool.assert_hostname == "api.example"
    assert pool.cert_reqs == "CERT_REQUIRED"
    assert host == "api.example"


def test_proxies_from_the_environment_are_ignored_when_the_policy_is_active(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://proxy.internal:3128")
    assert Transport(DestinationPolicy(deny_private=True)).connections.proxies == {}
    assert Transport().connections.proxies["http"] == "http://proxy.internal:3128"

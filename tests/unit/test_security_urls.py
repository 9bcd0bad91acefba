"""No open door, in the caller and the transport: ambiguous URLs, embedded IPv4, credentials on redirects.

* A URL two parsers read differently is refused (``check_url``), and the
  destination policy checks the same parse the connection is made from.
* An IPv6 address embedding a private IPv4 address is judged by that IPv4.
* A redirect leaving the origin drops what the old host's destinations entry
  added, every credential header whatever its name, and the signature; it
  never carries a body; the new host gets its own entry's headers.
* A password in the URL is in no error message.

The worker-side attacks (a message put on the queue by hand) are in
tests/integration/test_security_worker.py.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dispatch.destinations import Destination, Destinations
from dispatch.errors import DestinationRefused
from dispatch.policy import DestinationPolicy, address_rule, embedded_ipv4, parse_allowed
from dispatch.retries import RetryPolicy
from dispatch.signing import generate_secret, verify
from dispatch.transport import Request, Transport
from dispatch.urlsafety import check_url

# -- one parse ----------------------------------------------------------------------------------

AMBIGUOUS = [
    "http://127.0.0.1:9000\\@93.184.215.14/",  # urllib3: 127.0.0.1:9000; urllib.parse: 93.184.215.14
    "http://93.184.215.14\\@127.0.0.1/",
    "http://127.0.0.1\\.example.com/",
    "https://example.com\\@localhost/",
    "http://example.com/\\\\localhost/",
    "http://%31%32%37.0.0.1/",  # urllib3 decodes the host to 127.0.0.1
    "http://[fe80::1%25eth0]/",
]

NOT_A_HOST = [
    "http://x\u200b.example.com/",  # zero-width space: urllib.parse keeps it, urllib3 cannot encode it
    "http://a\u2764.example/",  # not an IDNA label
    "http://example.com\uff0eevil/",  # a full-width dot
    "http://example\u00ad.com/",  # a soft hyphen (invisible)
]


@pytest.mark.parametrize("url", AMBIGUOUS + NOT_A_HOST)
def test_urls_the_parsers_disagree_on_are_refused(url):
    with pytest.raises(ValueError, match="URL"):
        check_url(url)


@pytest.mark.parametrize("url", AMBIGUOUS + NOT_A_HOST)
def test_the_facade_refuses_them_too(url):
    from dispatch import URL

    with pytest.raises(ValueError):
        URL(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "HTTPS://Example.COM:8443/a/b?c=d&e=@f#g",
        "http://user:p%40ss@example.com/",
        "http://[2606:4700::1111]:8080/",
        "http://m\u00fcnchen.de/",  # a valid IDNA name
        "http://127.0.0.1:9000/hook",
    ],
)
def test_ordinary_urls_still_pass(url):
    assert check_url(url) == url


def test_the_policy_checks_the_host_the_connection_goes_to():
    policy = DestinationPolicy(deny_private=True)
    with pytest.raises(DestinationRefused, match=r"127\.0\.0\.1"):
        policy.check("http://127.0.0.1:9000\\@93.184.215.14/")


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"status": "success", "retval": "reached"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_server(host: str = "127.0.0.1") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, 0), Recorder)
    server.seen = []
    server.base = f"http://{host}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    first, second = start_server(), start_server()
    yield first, second
    for server in (first, second):
        server.shutdown()
        server.server_close()


def test_a_transport_with_the_policy_never_reaches_the_hidden_host(servers):
    local, _ = servers
    port = local.server_address[1]
    transport = Transport(DestinationPolicy(deny_private=True))
    request = Request(f"http://127.0.0.1:{port}\\@93.184.215.14/", "GET", {}, timeout=3, max_response_bytes=1000)
    with pytest.raises(DestinationRefused):
        transport.attempt(request)
    assert local.seen == []


def test_a_transport_without_the_policy_refuses_an_ambiguous_url_too(servers):
    local, _ = servers
    request = Request(f"{local.base}\\@example.com/", "GET", {}, timeout=3, max_response_bytes=1000)
    with pytest.raises(DestinationRefused, match="URL"):
        Transport().attempt(request)
    assert local.seen == []


# -- embedded IPv4 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("::ffff:127.0.0.1", "loopback"),  # mapped (was the only one unwrapped)
        ("::ffff:0:127.0.0.1", "loopback"),  # SIIT
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("::10.0.0.1", "private"),
        ("64:ff9b::127.0.0.1", "loopback"),  # NAT64
        ("64:ff9b::10.1.2.3", "private"),
        ("64:ff9b::169.254.169.254", "cloud-metadata"),
        ("64:ff9b:1::192.168.0.1", "private"),  # local-use NAT64, /96 layout
        ("64:ff9b:1:ab::1", "local-use NAT64"),  # another layout: refused whole
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::1", "cloud-metadata"),  # 6to4 of 169.254.169.254
        ("2001:db8::5efe:10.0.0.1", "private"),  # ISATAP
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("64:ff9b::8.8.8.8", None),  # a public IPv4 through NAT64 is public
        ("2002:808:808::1", None),
        ("2606:4700::1111", None),
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_they_embed(address, rule):
    assert address_rule(ipaddress.ip_address(address)) == rule


def test_embedded_ipv4_is_found_in_every_form():
    for form in ("::ffff:10.1.2.3", "::ffff:0:10.1.2.3", "::10.1.2.3", "64:ff9b::10.1.2.3", "2002:a01:203::"):
        assert embedded_ipv4(ipaddress.ip_address(form)) == ipaddress.IPv4Address("10.1.2.3"), form
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1111")) is None


def test_an_allowed_network_admits_both_forms_of_an_address(monkeypatch):
    policy = DestinationPolicy(True, *parse_allowed(["10.1.0.0/16"]))
    assert policy.allows(ipaddress.ip_address("::ffff:10.1.2.3"))
    assert policy.allows(ipaddress.ip_address("64:ff9b::10.1.2.3"))
    assert policy.allows(ipaddress.ip_address("10.1.2.3"))
    assert not policy.allows(ipaddress.ip_address("::ffff:10.2.0.1"))
    mapped_policy = DestinationPolicy(True, *parse_allowed(["::ffff:10.1.0.0/112"]))
    assert mapped_policy.allows(ipaddress.ip_address("10.1.2.3"))

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "mapped.example":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:10.1.2.3", port, 0, 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    policy.check("http://mapped.example/")
    with pytest.raises(DestinationRefused, match="private"):
        DestinationPolicy(deny_private=True).check("http://mapped.example/")


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "::ffff:0:7f00:1", "2002:7f00:1::1", "[::127.0.0.1]"])
def test_the_policy_refuses_urls_with_embedded_loopback(address):
    host = address if address.startswith("[") else f"[{address}]"
    with pytest.raises(DestinationRefused, match="loopback"):
        DestinationPolicy(deny_private=True).check(f"http://{host}:9/")


# -- credentials stay with their origin ----------------------------------------------------------


def test_signature_and_credentials_do_not_follow_a_redirect_to_another_origin(servers):
    first, second = servers
    transport = Transport(signing_secrets=[generate_secret()])
    url = f"http://user:secret@127.0.0.1:{first.server_address[1]}/redirect?to={second.base}/landing"
    request = Request(url, "GET", {}, timeout=5, max_response_bytes=1000, call_id="call-1")
    assert json.loads(transport.attempt(request).body)["retval"] == "reached"

    sent = first.seen[0]["headers"]
    assert {"webhook-id", "webhook-timestamp", "webhook-signature", "authorization"} <= sent.keys()
    landed = second.seen[0]["headers"]
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature", "authorization"} & landed.keys()
    assert landed["idempotency-key"] == "call-1"  # not a credential: it still deduplicates


def test_a_redirect_within_the_origin_keeps_them(servers):
    first, _ = servers
    transport = Transport(signing_secrets=[generate_secret()])
    url = f"http://user:secret@127.0.0.1:{first.server_address[1]}/redirect?to=/landing"
    request = Request(url, "GET", {}, timeout=5, max_response_bytes=1000, call_id="call-1")
    transport.attempt(request)
    assert {"webhook-signature", "authorization"} <= first.seen[1]["headers"].keys()


def test_a_redirect_within_the_origin_is_signed_again_for_its_new_url(servers):
    first, _ = servers
    secret = generate_secret()
    url = f"{first.base}/redirect?to=/landing?page=2"
    request = Request(url, "GET", {"q": "1"}, timeout=5, max_response_bytes=1000, call_id="call-1")
    Transport(signing_secrets=[secret]).attempt(request)
    landed = first.seen[1]
    query = landed["path"].partition("?")[2]
    assert landed["path"].startswith("/landing?") and query != first.seen[0]["path"].partition("?")[2]
    assert verify(query.encode(), landed["headers"], secret)[0] == "call-1"  # not the first URL's stale signature


def test_a_redirect_to_an_ambiguous_location_is_refused(servers):
    first, second = servers
    url = f"{first.base}/redirect?to=http://example.com\\@127.0.0.1:{second.server_address[1]}/"
    with pytest.raises(DestinationRefused, match="redirect"):
        Transport().attempt(Request(url, "GET", {}, timeout=5, max_response_bytes=1000))
    assert second.seen == []


def shop_destinations(first: ThreadingHTTPServer, second: ThreadingHTTPServer, landing_secret: str) -> Destinations:
    """The first server's entry adds credentials under names no list would know; the second has its own."""
    first_entry = Destination(
        "first",
        headers={
            "X-Shop-Token": "shop-token-1",
            "X-Shopify-Access-Token": "shpat-1",
            "Api-Key": "api-key-1",
            "PRIVATE-TOKEN": "glpat-1",
            "X-Tenant": "acme",  # no credential by its name: it goes because the entry added it
        },
    )
    second_entry = Destination("second", headers={"X-Landing-Token": "landing-1"}, signing_secrets=(landing_secret,))
    return Destinations(
        {f"127.0.0.1:{first.server_address[1]}": first_entry, f"127.0.0.1:{second.server_address[1]}": second_entry}
    )


def test_what_the_destination_entry_added_stays_and_the_new_host_gets_its_own(servers):
    first, second = servers
    landing_secret = generate_secret()
    transport = Transport(
        signing_secrets=[generate_secret()], destinations=shop_destinations(first, second, landing_secret)
    )
    url = f"{first.base}/redirect?to={second.base}/landing"
    request = Request(url, "GET", {"q": "1"}, timeout=5, max_response_bytes=1000, call_id="call-1")
    assert json.loads(transport.attempt(request).body)["retval"] == "reached"

    sent, landed = first.seen[0]["headers"], second.seen[0]["headers"]
    first_headers = {"x-shop-token", "x-shopify-access-token", "api-key", "private-token", "x-tenant"}
    assert first_headers <= sent.keys()
    assert not first_headers & landed.keys()
    assert landed["x-landing-token"] == "landing-1"
    assert verify(b"", landed, landing_secret)[0] == "call-1"  # signed with the new host's own secret, for its URL


def test_credentials_the_call_itself_carries_do_not_follow_whatever_their_names(servers):
    first, second = servers
    headers = {"X-Shop-Token": "t", "Cookie": "s=1", "X-Api-Key": "k", "X-Session": "s", "X-Tenant": "acme"}
    url = f"{first.base}/redirect?to={second.base}/landing"
    request = Request(url, "GET", {}, timeout=5, max_response_bytes=1000, call_id="call-1", headers=headers)
    Transport().attempt(request)
    landed = second.seen[0]["headers"]
    assert not {"x-shop-token", "cookie", "x-api-key", "x-session"} & landed.keys()
    assert (landed["x-tenant"], landed["idempotency-key"]) == ("acme", "call-1")


@pytest.mark.parametrize(("status", "method"), [(307, "POST"), (308, "PUT"), (302, "PUT")])
def test_a_body_never_follows_a_redirect_to_another_origin(server, status, method):
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/redirect/{status}?to=http://localhost:{port}/landing"
    request = Request(url, method, {"card": "4242"}, timeout=5, max_response_bytes=1000, call_id="call-1")
    with pytest.raises(DestinationRefused, match="body to another origin"):
        Transport().attempt(request)
    assert [seen["target"] for seen in server.seen] == [f"/redirect/{status}?to=http://localhost:{port}/landing"]


# -- secrets stay out of messages -------------------------------------------------------------------


def test_a_password_in_the_url_is_in_no_error_message(server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    policy = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.01, retry_after_max=1)
    port_of_server = server.server_address[1]
    failing = {
        "refused": f"http://user:pw-refused-1@127.0.0.1:{port}/hook",
        "bad status": f"http://user:pw-status-1@127.0.0.1:{port_of_server}/redirect/418?to=x",
        "too many redirects": f"http://user:pw-loop-1@127.0.0.1:{port_of_server}/redirect/302?to=self",
        "ambiguous": f"http://user:pw-ambiguous-1@127.0.0.1:{port_of_server}\\@example.com/",
    }
    for what, url in failing.items():
        request = Request(url, "GET", {}, timeout=2, max_response_bytes=1000)
        with pytest.raises(Exception) as raised:
            Transport().deliver(request, policy)
        assert "pw-" not in str(raised.value), (what, str(raised.value))
        assert "user:***@" in str(raised.value) or what == "ambiguous", (what, str(raised.value))


def test_the_destinations_files_credentials_are_registered_as_secrets_when_loaded(tmp_path):
    from dispatch.destinations import load_destinations
    from dispatch.redaction import redact

    secret = generate_secret()
    path = tmp_path / "destinations.toml"
    path.write_text(
        '[destinations."shop.example"]\n'
        'headers = { Authorization = "Bearer ${SHOP_TOKEN}", X-Shop-Token = "shop-literal-77" }\n'
        f'signing_secret = "{secret}"\n'
    )
    load_destinations(str(path), {"SHOP_TOKEN": "shop-env-token-42"})
    shown = redact(f"echoed: shop-env-token-42 / shop-literal-77 / {secret}")
    assert shown == "echoed: *** / *** / ***"

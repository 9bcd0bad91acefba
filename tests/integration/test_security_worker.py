"""No open door, against a real worker: what an attacker who controls a URL -- or the queue -- can make it do.

Messages are put on the worker's queue directly (:func:`enqueue_unchecked`),
skipping the caller's checks, as someone with access to RabbitMQ could:
the worker must hold the line on its own.  The servers are threads of the
test process on 127.0.0.1, so a request that reaches one is counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dispatch import URL, DestinationRefused, TransportError
from dispatch.result import CallResult
from dispatch.signing import generate_secret

pytestmark = pytest.mark.integration


def enqueue_unchecked(queue: str, url: str, method: str = "GET", params=None, options=None) -> CallResult:
    """Put a call on ``queue`` as it would travel, without ``check_call``: what a queue-level attacker does."""
    from dispatch.tasks import http_dispatch

    message = CallResult(
        queue_name=queue,
        actor_name=http_dispatch.actor_name,
        args=(url, method, params or {}, options),
        kwargs={},
        options={},
    )
    http_dispatch.broker.enqueue(message)
    return message


Behaviour = Callable[[BaseHTTPRequestHandler], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.server.behaviour(self)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def answer(handler: BaseHTTPRequestHandler, status: int = 200, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


SUCCESS = b'{"status": "success", "retval": "reached"}'


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], ThreadingHTTPServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.seen, server.behaviour = [], behaviour
        server.port = server.server_address[1]
        server.base = f"http://127.0.0.1:{server.port}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# -- one parse of the URL ---------------------------------------------------------------------------


def test_a_guarded_worker_never_reaches_a_host_hidden_behind_a_backslash(make_worker, serve):
    hidden = serve(lambda handler: answer(handler, body=SUCCESS))
    bad = f"http://127.0.0.1:{hidden.port}\\@93.184.215.14/hook"
    with pytest.raises(ValueError, match="contains"):
        URL(bad)
    guarded = make_worker(DISPATCH_DENY_PRIVATE="1")
    with pytest.raises(DestinationRefused):
        enqueue_unchecked(guarded.queue, bad).get(timeout=30)
    assert hidden.seen == []


def test_an_unguarded_worker_refuses_an_ambiguous_url_rather_than_guess(make_worker, serve):
    hidden = serve(lambda handler: answer(handler, body=SUCCESS))
    plain = make_worker()
    with pytest.raises(DestinationRefused, match="URL"):
        enqueue_unchecked(plain.queue, f"http://127.0.0.1:{hidden.port}\\@example.com/").get(timeout=30)
    assert hidden.seen == []


def test_a_host_that_is_not_a_name_ends_as_our_error_not_a_parse_error(make_worker):
    plain = make_worker()
    with pytest.raises(ValueError, match="position"):
        URL("http://x\u200b.example.com/")
    with pytest.raises(DestinationRefused, match="IDNA"):
        enqueue_unchecked(plain.queue, "http://a\u2764.example/").get(timeout=30)


# -- the whole attempt has a deadline -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "drop"),
    [(b"HTTP/1.1 200 OK\r\n", b"X"), (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b" ")],
    ids=["dripping-headers", "dripping-body"],
)
def test_a_worker_thread_is_not_held_by_a_dripping_server(make_worker, serve, head, drop):
    def drip(handler):
        handler.wfile.write(head)
        for _ in range(120):  # a minute of it, a byte every half second
            handler.wfile.write(drop)
            handler.wfile.flush()
            time.sleep(0.5)

    dripping = serve(drip)
    worker = make_worker(DISPATCH_TIMEOUT="2", DISPATCH_MAX_ATTEMPTS="1")
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        worker.send(dripping.base + "/slow").get(timeout=60)
    assert time.monotonic() - started < 2 + 4


# -- odd input ends as our own errors ---------------------------------------------------------------


def test_an_odd_retry_after_ends_as_a_transport_error(make_worker, serve):
    busy = serve(lambda handler: answer(handler, 503, Retry_After="\u00b2"))  # str.isdigit() says yes; float() no
    huge = serve(lambda handler: answer(handler, 503, Retry_After="1" + "0" * 400))
    worker = make_worker(DISPATCH_MAX_ATTEMPTS="1")
    for server in (busy, huge):
        with pytest.raises(TransportError, match="503"):
            worker.send(server.base + "/busy").get(timeout=30)


def test_a_queued_call_with_an_absurd_timeout_does_not_overflow(make_worker, serve):
    fine = serve(lambda handler: answer(handler, body=SUCCESS))
    with pytest.raises(ValueError, match="timeout"):
        URL(fine.base, timeout=1e308)
    worker = make_worker()
    assert enqueue_unchecked(worker.queue, fine.base + "/", options={"timeout": 1e308}).get(timeout=30) == "reached"


# -- signatures stay with their origin ----------------------------------------------------------------


def test_a_redirect_to_another_host_carries_no_signature_or_credentials(make_worker, serve):
    landing = serve(lambda handler: answer(handler, body=SUCCESS))
    redirecting = serve(lambda handler: answer(handler, 302, Location=f"{landing.base}/landing"))
    worker = make_worker(DISPATCH_SIGNING_SECRET=generate_secret())
    url = f"http://user:secret@127.0.0.1:{redirecting.port}/start"
    assert worker.send(url).get(timeout=30) == "reached"

    credentials = {"webhook-id", "webhook-timestamp", "webhook-signature", "authorization"}
    assert credentials <= redirecting.seen[0].keys()  # the origin got them
    assert not credentials & landing.seen[0].keys()  # the other host did not


# -- what a destination entry adds stays with its host -------------------------------------------------


def test_a_destinations_headers_stay_with_their_host_when_it_redirects_to_another(make_worker, serve, tmp_path):
    landing = serve(lambda handler: answer(handler, body=SUCCESS))
    shop = serve(
        lambda handler: answer(handler, 302, Location=f"{landing.base}/landing")
    )  # another port: another origin
    destinations = tmp_path / "destinations.toml"
    destinations.write_text(
        f'[destinations."127.0.0.1:{shop.port}"]\n'
        'headers = { X-Shop-Token = "${SHOP_TOKEN}", X-Shopify-Access-Token = "shpat-4711", '
        'Api-Key = "api-key-4711", PRIVATE-TOKEN = "glpat-4711", X-Tenant = "acme" }\n'
        f'[destinations."127.0.0.1:{landing.port}"]\n'
        'headers = { X-Landing-Token = "landing-4711" }\n'
    )
    worker = make_worker(DISPATCH_DESTINATIONS=str(destinations), SHOP_TOKEN="shop-token-4711")
    assert worker.send(f"{shop.base}/start").get(timeout=30) == "reached"

    shop_headers = {"x-shop-token", "x-shopify-access-token", "api-key", "private-token", "x-tenant"}
    assert shop_headers <= shop.seen[0].keys()
    assert not shop_headers & landing.seen[0].keys(), landing.seen[0]
    assert landing.seen[0]["x-landing-token"] == "landing-4711"  # the new host's own entry


def test_a_body_never_follows_a_307_to_another_origin(make_worker, serve):
    landing = serve(lambda handler: answer(handler, body=SUCCESS))
    moved = serve(lambda handler: answer(handler, 307, Location=f"{landing.base}/landing"))
    worker = make_worker(DISPATCH_MAX_ATTEMPTS="1")
    with pytest.raises(DestinationRefused, match="body to another origin"):
        worker.send(f"{moved.base}/pay", "POST", {"card": "4242 4242 4242 4242"}).get(timeout=30)
    assert len(moved.seen) == 1
    assert landing.seen == []

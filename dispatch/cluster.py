"""Several RabbitMQ nodes in ``DISPATCH_BROKER_URL``: parsing, a random start, and naming nodes safely.

``DISPATCH_BROKER_URL`` takes one AMQP URL or several separated by ``;``
(dramatiq's and pika's own separator), one per node of a cluster::

    amqp://app:secret@rabbit-1:5672/prod;amqp://app:secret@rabbit-2:5672/prod;amqp://app:secret@rabbit-3:5672/prod

pika connects to the first node of the list that answers, and on a lost
connection starts again from the top.  Given the same list everywhere, every
worker and sender would pile onto the first node; so each process shuffles
the list once (:func:`broker_urls`) and keeps that order for its lifetime:
the load spreads, and a process's failover order is stable.

Every URL is validated, and all must name the same vhost: the nodes of one
cluster serve the same queues, and a list mixing vhosts is a mistake that
would only show as calls vanishing into another vhost after a failover.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

#: What separates the nodes' URLs in ``DISPATCH_BROKER_URL`` (dramatiq splits on it too).
SEPARATOR = ";"

_lock = threading.Lock()
_orders: dict[str, list[str]] = {}


def split_urls(text: str) -> list[str]:
    """The URLs of a ``;``-separated list, stripped, empty entries dropped."""
    return [part.strip() for part in text.split(SEPARATOR) if part.strip()]


def vhost_of(url: str) -> str:
    """The vhost an AMQP URL (or a list of them) names, as pika reads it: ``/`` when there is none."""
    urls = split_urls(url) or [url]
    path = urlsplit(urls[0]).path
    return unquote(path[1:]) if path not in ("", "/") else "/"


def node_of(url: str) -> str:
    """``host:port`` of one AMQP URL, without user or password: what an error message may show."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    return f"{parts.hostname or 'localhost'}:{port}"


def parse_broker_url(text: str) -> str:
    """Validate ``DISPATCH_BROKER_URL``: each URL amqp(s) with a host, one vhost for all; ``stub://`` alone.

    Returns the list joined by ``;`` (whitespace and empty entries dropped).
    Raises ``ValueError`` naming the bad entry, without its password.
    """
    urls = split_urls(text)
    if not urls:
        raise ValueError("must be an amqp:// or amqps:// URL, or several separated by ';'")
    if len(urls) == 1 and urlsplit(urls[0]).scheme == "stub":
        return urls[0]
    for position, url in enumerate(urls, start=1):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError(f"URL {position} of {len(urls)} is not a URL") from None
        if parts.scheme not in ("amqp", "amqps"):
            where = f"URL {position} of {len(urls)} ({node_of(url)})" if len(urls) > 1 else "it"
            raise ValueError(f"must be amqp:// or amqps:// URLs separated by ';' (stub:// only alone); {where} is not")
        if not parts.hostname:
            raise ValueError(f"URL {position} of {len(urls)} names no host")
    vhosts = {vhost_of(url) for url in urls}
    if len(vhosts) > 1:
        named = ", ".join(f"{node_of(url)} -> {vhost_of(url)!r}" for url in urls)
        raise ValueError(f"every node's URL must name the same vhost, these differ: {named}")
    return SEPARATOR.join(urls)


def broker_urls(text: str, rng: random.Random | None = None) -> list[str]:
    """The URLs of ``text`` in this process's random order, the same order every time it is asked.

    Give it to dramatiq's ``RabbitmqBroker(url=...)`` (a list is accepted):
    pika tries the nodes in this order, so each process starts from a
    random one.
    """
    with _lock:
        order = _orders.get(text)
        if order is None:
            order = split_urls(text)
            (rng or random).shuffle(order)
            _orders[text] = order
        return list(order)


def connection_parameters(text: str) -> list[Any]:
    """pika parameters for ``pika.BlockingConnection``, in this process's order (:func:`broker_urls`)."""
    import pika  # here, not at import: settings import this module, and must stay light

    return [pika.URLParameters(url) for url in broker_urls(text)]


def describe_nodes(parameters: Any | Iterable[Any]) -> str:
    """``host:port, host:port`` of pika parameters (a broker's ``parameters``), never a password."""
    if not isinstance(parameters, Iterable):
        parameters = [parameters]
    return ", ".join(f"{p.host}:{p.port}" for p in parameters)

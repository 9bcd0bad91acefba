"""What the dispatch queues hold right now, from RabbitMQ's management HTTP API.

``dispatch status`` reads three queues -- the calls queue, its ``.DQ``
(delayed) and its ``.XQ`` (dead letters) -- in the vhost of
``DISPATCH_BROKER_URL`` (one vhost for all of a cluster's URLs).  AMQP itself can count a queue's ready messages,
but not its unacknowledged ones, its consumers or its rates; the management
API (``rabbitmq-plugins enable rabbitmq_management``) has all of them.

The API is reached at ``DISPATCH_MANAGEMENT_URL`` when it is set
(credentials go in the URL), else on the host of ``DISPATCH_BROKER_URL``
(:func:`management_url_for`) -- never at a default that may be another
RabbitMQ.  :meth:`Management.cluster_name` lets ``dispatch status`` check that
the API describes the very broker the calls go to.  The numbers are refreshed
by RabbitMQ every few seconds, so they lag the queue slightly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from .cluster import split_urls
from .settings import Settings

#: Where the management API listens by default, for plain and TLS brokers.
PORTS = {"amqp": ("http", 15672), "amqps": ("https", 15671)}


class ManagementError(Exception):
    """The management API could not be asked, or refused to answer."""


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """One queue's counts and rates; all zero for a queue that does not exist (yet)."""

    name: str
    exists: bool = False
    ready: int = 0
    unacked: int = 0
    consumers: int = 0
    publish_rate: float = 0.0
    deliver_rate: float = 0.0

    @property
    def messages(self) -> int:
        return self.ready + self.unacked

    @classmethod
    def from_api(cls, name: str, info: Mapping[str, Any]) -> QueueStats:
        rates = info.get("message_stats", {})
        return cls(
            name=name,
            exists=True,
            ready=int(info.get("messages_ready", 0)),
            unacked=int(info.get("messages_unacknowledged", 0)),
            consumers=int(info.get("consumers", 0)),
            publish_rate=float(rates.get("publish_details", {}).get("rate", 0.0)),
            deliver_rate=float(rates.get("deliver_get_details", {}).get("rate", 0.0)),
        )


@dataclasses.dataclass(frozen=True)
class DispatchStatus:
    """The dispatch queues of one vhost, summed up the way an operator asks about them."""

    vhost: str
    calls: QueueStats  # waiting (ready) or being performed (unacked)
    delayed: QueueStats  # the .DQ: calls whose time has not come
    dead: QueueStats  # the .XQ: calls that failed for good

    def summary(self) -> dict[str, Any]:
        """A flat dict for ``--json``: the headline numbers, then each queue in full."""
        return {
            "vhost": self.vhost,
            "queue": self.calls.name,
            "ready": self.calls.ready,
            "unacked": self.calls.unacked,
            "delayed": self.delayed.messages,
            "dead": self.dead.messages,
            "consumers": self.calls.consumers,
            "publish_rate": self.calls.publish_rate,
            "deliver_rate": self.calls.deliver_rate,
            "queues": [dataclasses.asdict(q) for q in (self.calls, self.delayed, self.dead)],
        }


def management_url_for(broker_url: str) -> str:
    """The management API of ``broker_url``'s first node: its host and credentials, port 15672 (15671 for amqps)."""
    parts = urlsplit(split_urls(broker_url)[0])
    scheme, port = PORTS.get(parts.scheme, PORTS["amqp"])
    host = parts.hostname or "localhost"
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit((scheme, f"{userinfo}{at}{f'[{host}]' if ':' in host else host}:{port}", "", "", ""))


class Management:
    """A small client for the parts of the management API that ``status`` needs.

    ``source`` says where ``url`` came from, for the messages that tell the operator what to fix.
    """

    def __init__(self, url: str, timeout: float = 5.0, source: str | None = None) -> None:
        parts = urlsplit(url)
        #: The URL without credentials: safe to show in messages.
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")
        self.timeout = timeout
        self.source = source or Settings.env("management_url")
        self.session = requests.Session()
        self.session.auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))

    def get(self, path: str) -> Any | None:
        """The decoded JSON at ``/api/<path>``, or None for a 404 (no such queue or vhost)."""
        try:
            response = self.session.get(f"{self.url}/api/{path}", timeout=self.timeout)
        except requests.RequestException as exc:
            raise ManagementError(
                f"cannot reach the RabbitMQ management API at {self.url} ({type(exc).__name__}), from "
                f"{self.source}; is the rabbitmq_management plugin enabled (rabbitmq-plugins enable "
                "rabbitmq_management)? set DISPATCH_MANAGEMENT_URL to where it listens"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise ManagementError(
                f"the management API at {self.url} rejected the credentials of {self.source}; they must be "
                "right and their user tagged management or monitoring: fix them, or set DISPATCH_MANAGEMENT_URL"
            )
        if not response.ok:
            raise ManagementError(f"the management API at {self.url} answered HTTP {response.status_code} for {path}")
        return response.json()

    def cluster_name(self) -> str | None:
        """The name of the RabbitMQ cluster the API describes (AMQP announces the same one), None if unsaid."""
        overview = self.get("overview") or {}
        name = overview.get("cluster_name")
        return str(name) if name else None

    def queue(self, vhost: str, name: str) -> QueueStats:
        info = self.get(f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}")
        return QueueStats.from_api(name, info) if info is not None else QueueStats(name)

    def dispatch_status(self, vhost: str, queue: str) -> DispatchStatus:
        """The calls queue with its dramatiq companions ``.DQ`` and ``.XQ``."""
        return DispatchStatus(
            vhost=vhost,
            calls=self.queue(vhost, queue),
            delayed=self.queue(vhost, f"{queue}.DQ"),
            dead=self.queue(vhost, f"{queue}.XQ"),
        )

"""Configuration from the environment.

Every setting is declared once, below, with its variable name, default and
parser -- the worker's, the client's, and those of the metrics server, the
gateway and ``dispatch status``.  Values are read on first use
(:func:`dispatch.runtime.get_runtime`), and a value that cannot be parsed stops start-up
with a :class:`~dispatch.errors.ConfigurationError` naming the variable --
a worker that silently ran with a default instead of the operator's value
would be worse than one that refuses to start.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .cluster import parse_broker_url
from .destinations import Destinations, load_destinations
from .errors import ConfigurationError
from .policy import DestinationPolicy, parse_allowed
from .redaction import redact, register_secret, register_url_password
from .signing import check_secret
from .validation import MAX_TIMEOUT, check_options


def _number(*, zero_allowed: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= 0 if zero_allowed else value > 0) or value == float("inf"):
            raise ValueError("must be zero or a positive number" if zero_allowed else "must be a positive number")
        return value

    return parse


_positive_number = _number(zero_allowed=False)
_non_negative_number = _number(zero_allowed=True)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("must be a positive integer")
    return int(text)


def _url_with_scheme(*schemes: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if urlsplit(text).scheme not in schemes:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return text

    return parse


def _results_url(text: str) -> str:
    """A Redis URL, ``unix://``, ``stub://``, or a Sentinel URL checked in full (never echoing its password)."""
    _url_with_scheme("redis", "rediss", "unix", "stub", "redis+sentinel", "rediss+sentinel")(text)
    if "+sentinel" in urlsplit(text).scheme:
        from .redis_connect import parse_sentinel_url  # redis-py: loaded for a Sentinel URL only

        parse_sentinel_url(text)
    return text


def _replicas(text: str) -> int | None:
    """``auto`` (None: derived from the topology) or how many replicas must hold a write."""
    if text == "auto":
        return None
    if not text.isdigit():
        raise ValueError("must be auto or a number of replicas (0 or more)")
    return int(text)


def _queue_name(text: str) -> str:
    if not text or len(text) > 200 or not all(c.isalnum() or c in "-_." for c in text):
        raise ValueError("must be 1-200 characters of letters, digits, '-', '_' or '.'")
    return text


def _flag(text: str) -> bool:
    if text.lower() not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ValueError("must be 1/0, true/false, yes/no or on/off")
    return text.lower() in ("1", "true", "yes", "on")


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        delays = (-1.0,)
    if not all(0 <= delay < float("inf") for delay in delays):
        raise ValueError("must be comma-separated seconds, e.g. 5,300,1800")
    check_options({"retry_schedule": delays})  # the per-call option's bounds hold for the default too
    return delays


def _attempt_timeout(text: str) -> float:
    value = _positive_number(text)
    if value > MAX_TIMEOUT:
        raise ValueError(f"must be at most {MAX_TIMEOUT:g} seconds")
    return value


def _host_list(text: str) -> tuple[str, ...]:
    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    parse_allowed(entries)
    return entries


def _secrets(text: str) -> tuple[str, ...]:
    return tuple(check_secret(secret) for secret in text.replace(",", " ").split())


def _queue_type(text: str) -> str:
    if text not in ("classic", "quorum"):
        raise ValueError("must be classic or quorum")
    return text


def _optional_port(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("must be a port, 1-65535")
    return int(text)


def _optional_http_url(text: str) -> str:
    parts = urlsplit(text)
    if text and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ValueError("must be an http:// or https:// URL")
    return text


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(token.strip() for token in text.split(",") if token.strip())


def _actor_paths(text: str) -> tuple[str, ...]:
    paths = tuple(path.strip() for path in text.split(",") if path.strip())
    for path in paths:
        module, _, name = path.partition(":")
        if not module or not name.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
            raise ValueError(f"{path!r} is not a module:actor path, e.g. myapp.tasks:add")
    return paths


def _database_url(text: str) -> str:
    if text and "://" not in text:
        raise ValueError("must be a database URL, e.g. postgresql://app@db/app or sqlite:///outbox.db")
    return text


def _register(text: str, secret: bool) -> None:
    """Have :func:`~dispatch.redaction.redact` mask a setting's secrets: a URL's password, or a secret's values."""
    if "://" in text:
        register_url_password(text)
    elif secret:  # tokens are comma-separated, signing secrets space-separated
        register_secret(*(part.strip() for part in text.split(",")), *text.replace(",", " ").split())


def _setting(
    env: str, default: str, parse: Callable[[str], Any], doc: str, secret: bool = False, shown: bool = True
) -> Any:
    """One setting's field; ``secret``: its text is never echoed and is redacted once read; ``shown``: in repr."""
    metadata = {"env": env, "default": default, "parse": parse, "doc": doc, "secret": secret}
    return dataclasses.field(metadata=metadata, repr=shown and not secret)


@dataclasses.dataclass(frozen=True)
class Settings:
    """One worker's or client's configuration; build it with :meth:`from_env`."""

    broker_url: str = _setting(
        "DISPATCH_BROKER_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        parse_broker_url,
        "RabbitMQ URL (vhost included), or one per cluster node separated by ';'; stub:// runs with no broker",
    )
    results_url: str = _setting(
        "DISPATCH_RESULTS_URL",
        "redis://127.0.0.1:6379/0",
        _results_url,
        "where outcomes, call states and flow state live; redis+sentinel://host:port,.../service[/db] for Sentinel",
    )
    sentinel_password: str = _setting(
        "DISPATCH_SENTINEL_PASSWORD",
        "",
        str,
        "the sentinels' own password, when DISPATCH_RESULTS_URL is a Sentinel URL (the master's is in the URL)",
        secret=True,
    )
    redis_replicas: int | None = _setting(
        "DISPATCH_REDIS_REPLICAS",
        "auto",
        _replicas,
        "replicas that must hold a write (WAIT) before it counts; auto: 1 with Sentinel or a replica, else 0",
    )
    queue: str = _setting("DISPATCH_QUEUE", "dispatch", _queue_name, "the queue the actor consumes (plus .DQ and .XQ)")
    timeout: float = _setting(
        "DISPATCH_TIMEOUT", "10", _attempt_timeout, "seconds for one whole HTTP attempt: connect, headers and body"
    )
    max_attempts: int = _setting(
        "DISPATCH_MAX_ATTEMPTS", "5", _positive_int, "transport attempts for one call before it fails"
    )
    max_response_bytes: int = _setting(
        "DISPATCH_MAX_RESPONSE_BYTES", "10485760", _positive_int, "a larger response body fails the call"
    )
    result_ttl: float = _setting(
        "DISPATCH_RESULT_TTL", "86400", _positive_number, "seconds an outcome stays readable in the results store"
    )
    retry_schedule: tuple[float, ...] = _setting(
        "DISPATCH_RETRY_SCHEDULE",
        "",
        _delays,
        "seconds between later deliveries of a call whose quick attempts all failed, e.g. 5,300,1800",
    )
    retry_after_max: float = _setting(
        "DISPATCH_RETRY_AFTER_MAX",
        "30",
        _positive_number,
        "longest Retry-After a worker thread waits; a longer one moves the call to its next scheduled delivery",
    )
    deny_private: bool = _setting(
        "DISPATCH_DENY_PRIVATE",
        "0",
        _flag,
        "1 refuses loopback, private, link-local, unique-local and cloud-metadata destinations",
    )
    allowed_hosts: tuple[str, ...] = _setting(
        "DISPATCH_ALLOWED_HOSTS",
        "",
        _host_list,
        "comma-separated hosts, addresses or CIDR networks allowed even when private",
    )
    signing_secrets: tuple[str, ...] = _setting(
        "DISPATCH_SIGNING_SECRET",
        "",
        _secrets,
        "whsec_... secret(s): every request is signed (Standard Webhooks); several, space-separated, to rotate",
        secret=True,
    )
    destinations: Destinations = _setting(  # noqa: RUF009 -- a field(), like every setting: Destinations is frozen
        "DISPATCH_DESTINATIONS",
        "",
        load_destinations,
        "a TOML file of per-host headers, signing secrets, limits and breaker (docs/destinations.md)",
        shown=False,  # the path may be shown; what it loads holds secrets, registered by load_destinations
    )
    queue_type: str = _setting(
        "DISPATCH_QUEUE_TYPE", "classic", _queue_type, "classic, or quorum for replicated queues on a cluster"
    )
    delivery_limit: int = _setting(
        "DISPATCH_DELIVERY_LIMIT",
        "20",
        _positive_int,
        "quorum queues: deliveries of one call before it is dead-lettered (x-delivery-limit)",
    )
    max_message_bytes: int = _setting(
        "DISPATCH_MAX_MESSAGE_BYTES", "1048576", _positive_int, "a call whose URL and params encode larger is refused"
    )
    send_timeout: float = _setting(
        "DISPATCH_SEND_TIMEOUT",
        "10",
        _non_negative_number,
        "seconds send() and the CLI keep trying while RabbitMQ is unreachable (BrokerUnavailable), and every publish "
        "-- gateway and workers' re-enqueues too -- waits while it blocks publishers (PublishBlocked)",
    )
    backoff_initial: float = _setting(
        "DISPATCH_BACKOFF_INITIAL", "0.5", _positive_number, "seconds before the first retry"
    )
    backoff_max: float = _setting("DISPATCH_BACKOFF_MAX", "10", _positive_number, "longest wait between two attempts")
    results_write_timeout: float = _setting(
        "DISPATCH_RESULTS_WRITE_TIMEOUT",
        "5",
        _positive_number,
        "seconds one write to the results store may take before it counts as failed",
    )
    results_store_patience: float = _setting(
        "DISPATCH_RESULTS_STORE_PATIENCE",
        "30",
        _non_negative_number,
        "seconds a worker keeps retrying to store an outcome (or a wait); then it travels with the re-queued message "
        "and is stored later: the call is not performed again",
    )
    delay_hold_max: float = _setting(
        "DISPATCH_DELAY_HOLD_MAX",
        "300",
        _positive_number,
        "longest a worker holds a delayed call unacked; longer waits sit in RabbitMQ (keep under consumer_timeout)",
    )
    scheduled_retry_after_max: float = _setting(
        "DISPATCH_SCHEDULED_RETRY_AFTER_MAX",
        "86400",
        _positive_number,
        "longest Retry-After honoured for a scheduled delivery; a longer one is cut to this",
    )
    metrics: bool = _setting(
        "DISPATCH_METRICS", "0", _flag, "1 exports Prometheus metrics from workers (on by itself when a port is set)"
    )
    metrics_port: int | None = _setting(
        "DISPATCH_METRICS_PORT", "", _optional_port, "port of a worker's metrics server (default 9191); turns them on"
    )
    metrics_host: str = _setting("DISPATCH_METRICS_HOST", "127.0.0.1", str, "address the metrics server listens on")
    management_url: str = _setting(
        "DISPATCH_MANAGEMENT_URL",
        "",
        _optional_http_url,
        "RabbitMQ's management API, credentials in the URL; read by dispatch status (empty: the broker's host, :15672)",
        secret=True,
    )
    gateway_tokens: tuple[str, ...] = _setting(
        "DISPATCH_GATEWAY_TOKEN",
        "",
        _tokens,
        "bearer token(s) the gateway accepts, comma-separated while rotating; the gateway refuses to start without",
        secret=True,
    )
    gateway_max_body: int = _setting(
        "DISPATCH_GATEWAY_MAX_BODY",
        "1048576",
        _positive_int,
        "largest request body the gateway reads, in bytes; a larger one is answered 413 before it is parsed",
    )
    gateway_actors: tuple[str, ...] = _setting(
        "DISPATCH_GATEWAY_ACTORS",
        "",
        _actor_paths,
        "dramatiq actors the gateway applies (POST /tasks/{actor_name}), comma-separated module:actor paths",
    )
    outbox_url: str = _setting(
        "DISPATCH_OUTBOX_URL",
        "",
        _database_url,
        "the database whose outbox table dispatch relay publishes (SQLAlchemy URL; docs/outbox.md)",
        secret=True,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting, raising ConfigurationError naming the first bad variable.

        The error never holds a secret: a setting marked secret is named without its value, any
        other is shown through :func:`~dispatch.redaction.redact` (a URL's password masked).  The
        secrets read are registered for redaction before anything else can show them.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            env, parse, secret = field.metadata["env"], field.metadata["parse"], field.metadata["secret"]
            text = environ.get(env, field.metadata["default"]).strip()
            _register(text, secret)
            try:
                values[field.name] = parse(text)
            except ValueError as exc:
                shown = "" if secret else f"={redact(text)!r}"
                raise ConfigurationError(f"{env}{shown} is invalid: {redact(str(exc))}") from None
        return cls(**values)

    def __repr__(self) -> str:
        """The fields shown, through :func:`~dispatch.redaction.redact`: a URL's password masked, registered or not."""
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
        return redact(f"{type(self).__name__}({shown})")

    @property
    def stub_broker(self) -> bool:
        """Whether calls go through dramatiq's in-memory StubBroker (``DISPATCH_BROKER_URL=stub://``)."""
        return self.broker_url.startswith("stub:")

    @property
    def stub_results(self) -> bool:
        """Whether outcomes and call records are kept in this process's memory (``DISPATCH_RESULTS_URL=stub://``)."""
        return self.results_url.startswith("stub:")

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics or self.metrics_port is not None

    def destination_policy(self) -> DestinationPolicy:
        names, networks = parse_allowed(self.allowed_hosts)
        return DestinationPolicy(self.deny_private, names, networks)

    @classmethod
    def env(cls, name: str) -> str:
        """The variable a setting is read from, for messages: ``Settings.env("queue")`` is ``"DISPATCH_QUEUE"``."""
        return str(next(f for f in dataclasses.fields(cls) if f.name == name).metadata["env"])

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting, for docs and ``--help``."""
        return [(f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for f in dataclasses.fields(cls)]

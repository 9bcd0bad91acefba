"""The destinations file: what a worker knows about each host it calls.

``DISPATCH_DESTINATIONS`` names a TOML file, read once when the settings
are (so a worker or gateway with a bad file does not start)::

    [destinations."api.example.com"]          # a host name, or "host:port"
    headers = { Authorization = "Bearer ${BILLING_TOKEN}" }
    signing_secret = "${BILLING_SECRET}"
    max_concurrency = 4
    rate = "50/s"

    [defaults]                                 # for every host not listed
    max_concurrency = 64
    breaker = { failures = 5, cooldown = 30 }

Why a file of its own: credentials belong to the destination, not to the
call.  A header given to ``URL(...)`` travels in the message, readable by
anyone who can read the queue; a header from this file is added by the
worker at the moment of sending, with ``${VAR}`` taken from the worker's
environment, so secrets never reach RabbitMQ.  The values of ``headers``
and ``signing_secret`` (and each ``${VAR}`` in them) are registered with
:mod:`dispatch.redaction`, so no message or log line shows them.

Precedence, decided here once: a listed host's table is used as it is,
and takes each *limit* it does not set (``max_concurrency``, ``rate``,
``breaker``) from ``[defaults]``; credentials (``headers``,
``signing_secret``) are never inherited by a listed host, so a token meant
for unlisted hosts is never sent to one the operator configured apart.
A file header wins over a call's header of the same name.

Every mistake is reported with the file and line it is on.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from .redaction import register_secret
from .signing import check_secret
from .validation import check_headers

#: The keys a host's table (or ``[defaults]``) may have.
KEYS = ("headers", "signing_secret", "max_concurrency", "rate", "breaker")

#: Per-host concurrency above this is a typo, not a limit.
MAX_CONCURRENCY = 10_000

_RATE = re.compile(r"\s*(\d+)\s*/\s*(s|min)\s*")
_PER = {"s": 1.0, "min": 60.0}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TABLE_HEADER = re.compile(r"\s*\[([^\[\]]+)\]\s*(#.*)?$")


@dataclasses.dataclass(frozen=True)
class Rate:
    """At most ``calls`` calls per ``per`` seconds (``"50/s"``, ``"600/min"``)."""

    calls: int
    per: float

    def __str__(self) -> str:
        return f"{self.calls}/{'s' if self.per == 1 else 'min'}"


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """Open after ``failures`` consecutive transport failures; probe again after ``cooldown`` seconds."""

    failures: int
    cooldown: float


@dataclasses.dataclass(frozen=True)
class Destination:
    """What the file says about one host (or ``[defaults]``); unset limits are ``None``."""

    name: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)  # credentials
    signing_secrets: tuple[str, ...] | None = dataclasses.field(default=None, repr=False)  # None: the worker's
    max_concurrency: int | None = None
    rate: Rate | None = None
    breaker: BreakerConfig | None = None

    @property
    def limited(self) -> bool:
        """Whether calls to this host are flow-controlled at all."""
        return self.max_concurrency is not None or self.rate is not None or self.breaker is not None


#: A host the file does not mention, with no ``[defaults]``: nothing added, nothing limited.
UNLISTED = Destination("*")


@dataclasses.dataclass(frozen=True)
class Destinations:
    """The whole file: listed hosts by ``host`` or ``host:port`` (lower case), and the defaults."""

    hosts: Mapping[str, Destination] = dataclasses.field(default_factory=dict)
    defaults: Destination = UNLISTED
    path: str = ""

    def for_host(self, host: str, port: int | None) -> Destination:
        """The entry for a call to ``host`` on ``port``: ``host:port`` first, then ``host``, then the defaults."""
        host = host.lower().strip("[]")
        return self.hosts.get(f"{host}:{port}") or self.hosts.get(host) or self.defaults

    def __bool__(self) -> bool:
        return bool(self.hosts) or self.defaults is not UNLISTED


def load_destinations(path: str, environ: Mapping[str, str] | None = None, *, credentials: bool = True) -> Destinations:
    """Read and check the file at ``path`` ("" reads nothing); ValueError names the file and line of a mistake.

    ``credentials=False`` reads the limits alone: headers and signing secrets are left out, unexpanded, so
    no ``${VAR}`` is needed (``dispatch hosts``, run where the workers' secrets are not).
    """
    if not path:
        return Destinations()
    environ = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the destinations file: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message already says "(at line N, column M)"
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    lines = _Lines(path, text)
    for key in document:
        if key not in ("destinations", "defaults"):
            known = '[destinations."host"] and [defaults]'
            raise lines.error((key,), None, f"unknown table {key!r}; the file has {known}")
    defaults = _destination("defaults", document.get("defaults", {}), ("defaults",), lines, environ, credentials)
    listed = document.get("destinations", {})
    if not isinstance(listed, dict):
        raise lines.error(("destinations",), None, "destinations must be a table of hosts")
    hosts = {}
    for name, table in listed.items():
        where = ("destinations", name)
        host = _host_key(name, lines, where)
        own = _destination(host, table, where, lines, environ, credentials)
        hosts[host] = dataclasses.replace(
            own,
            max_concurrency=own.max_concurrency if own.max_concurrency is not None else defaults.max_concurrency,
            rate=own.rate or defaults.rate,
            breaker=own.breaker or defaults.breaker,
        )
    has_defaults = "defaults" in document
    return Destinations(MappingProxyType(hosts), defaults if has_defaults else UNLISTED, path)


def _host_key(name: str, lines: _Lines, where: tuple[str, ...]) -> str:
    host, _, port = name.lower().rpartition(":") if name.count(":") == 1 else (name.lower(), "", "")
    if not host or not re.fullmatch(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]|[0-9a-f:]+", host):
        raise lines.error(where, None, f"{name!r} is not a host name or host:port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise lines.error(where, None, f"{name!r} has an invalid port")
    return f"{host.strip('[]')}:{port}" if port else host.strip("[]")


def _destination(
    name: str, table: Any, where: tuple[str, ...], lines: _Lines, environ: Mapping[str, str], credentials: bool
) -> Destination:
    if not isinstance(table, dict):
        raise lines.error(where, None, f"{'.'.join(where)} must be a table")
    for key in table:
        if key not in KEYS:
            raise lines.error(where, key, f"unknown key {key!r}; known: {', '.join(KEYS)}")

    def checked(key: str, parse: Any) -> Any:
        if key not in table:
            return None
        try:
            return parse(table[key])
        except ValueError as exc:
            raise lines.error(where, key, f"{key}: {exc}") from None

    def expand(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {type(value).__name__}")

        def variable(match: re.Match) -> str:
            if match[1] not in environ:
                raise ValueError(f"${{{match[1]}}} is not set in the environment")
            register_secret(environ[match[1]])  # the part of a value that is the secret, e.g. the token of "Bearer ..."
            return environ[match[1]]

        return _VARIABLE.sub(variable, value)

    if credentials:
        headers = checked("headers", lambda value: check_headers(_expand_all(value, expand)))
        secrets = checked("signing_secret", lambda value: tuple(check_secret(s) for s in expand(value).split()))
        register_secret(*(headers or {}).values(), *(secrets or ()))  # never shown again (dispatch.redaction)
    else:
        headers = secrets = None
    return Destination(
        name=name,
        headers=MappingProxyType(headers or {}),
        signing_secrets=secrets or None,
        max_concurrency=checked("max_concurrency", _concurrency),
        rate=checked("rate", _rate),
        breaker=checked("breaker", _breaker),
    )


def _expand_all(headers: Any, expand: Any) -> Any:
    if not isinstance(headers, dict):
        raise ValueError(f"must be a table of header names to values, not {type(headers).__name__}")
    return {name: expand(value) for name, value in headers.items()}


def _concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(f"must be an integer from 1 to {MAX_CONCURRENCY}, not {value!r}")
    return value


def _rate(value: Any) -> Rate:
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if not match or int(match[1]) < 1:
        raise ValueError(f'must be "N/s" or "N/min" with N at least 1, not {value!r}')
    return Rate(int(match[1]), _PER[match[2]])


def _breaker(value: Any) -> BreakerConfig:
    if not isinstance(value, dict) or set(value) != {"failures", "cooldown"}:
        raise ValueError(f"must be {{ failures = N, cooldown = SECONDS }}, not {value!r}")
    failures, cooldown = value["failures"], value["cooldown"]
    if isinstance(failures, bool) or not isinstance(failures, int) or not 1 <= failures <= 1000:
        raise ValueError(f"failures must be an integer from 1 to 1000, not {failures!r}")
    if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or not 0 < cooldown <= 86400:
        raise ValueError(f"cooldown must be a number of seconds above 0, at most 86400, not {cooldown!r}")
    return BreakerConfig(failures, float(cooldown))


class _Lines:
    """Finds the line a table or key is on, so an error can name it (tomllib keeps no positions)."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, table: tuple[str, ...], key: str | None, message: str) -> ValueError:
        line = self._find(table, key)
        return ValueError(f"{self.path}{f' line {line}' if line else ''}: {message}")

    def _find(self, table: tuple[str, ...], key: str | None) -> int | None:
        current: tuple[str, ...] = ()
        table_line = None
        for number, line in enumerate(self.lines, start=1):
            header = _TABLE_HEADER.match(line)
            if header:
                current = _path_of(header[1])
                if current == table:
                    table_line = number
                continue
            key_pattern = rf'\s*("{re.escape(key)}"|{re.escape(key)})\s*=' if key else None
            if current == table and key_pattern and re.match(key_pattern, line):
                return number
            if current == () and table and re.match(rf"\s*{re.escape(table[0])}\s*=", line):
                return number  # a table written inline at the top level
        return table_line


def _path_of(header: str) -> tuple[str, ...]:
    """``destinations."api.example.com"`` -> ``("destinations", "api.example.com")``."""
    try:
        document: Any = tomllib.loads(f"[{header}]")
    except tomllib.TOMLDecodeError:
        return ()
    path = []
    while isinstance(document, dict) and len(document) == 1:
        key = next(iter(document))
        path.append(key)
        document = document[key]
    return tuple(path)

"""Redis's errors in the package's words: :class:`~dispatch.errors.ResultsUnavailable`, naming which Redis and the fix.

A handle's ``get()``, ``aget()``, ``state()``, ``cancel()``, ``acancel()`` and
``attempts()`` read or write the results store; redis-py raises its own
classes (a refused connection, a timeout, a wrong password, a full or
read-only server, no master known to the sentinels).  :func:`mapped_redis_errors`
turns every one of them into ``ResultsUnavailable`` in one place, as httpx
maps httpcore's errors: a caller's ``except DispatchError`` always holds.
:func:`explain_redis_error` gives the words, and the CLI uses the same ones.

Only the standard library here (redis-py is imported when an error is mapped),
so the CLI's ``--help`` stays quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from .errors import ResultsUnavailable
from .redaction import redact

#: What to check, by the name of redis-py's error class (the first of the error's classes, most specific first).
_FIXES: dict[str, str] = {
    "MasterNotFoundError": (
        "the sentinels know no reachable master for it; are the sentinels running and watching that service? "
        "check DISPATCH_RESULTS_URL (and DISPATCH_SENTINEL_PASSWORD)"
    ),
    "AuthenticationError": "it refused the login; check the user and password in DISPATCH_RESULTS_URL",
    "AuthenticationWrongNumberOfArgsError": "it refused the login; check the user and password in DISPATCH_RESULTS_URL",
    "NoPermissionError": "its ACL denies this user a command dispatch needs; grant it, or use another user",
    "OutOfMemoryError": (
        "it is out of memory and refuses writes; raise maxmemory or keep outcomes for less time "
        "(DISPATCH_RESULT_TTL): docs/scaling.md"
    ),
    "ReadOnlyError": (
        "it is a read-only replica; point DISPATCH_RESULTS_URL at the master, or use a redis+sentinel:// URL"
    ),
    "MasterDownError": "its master is lost; a failover may be under way: try again, or check the sentinels",
    "NotReplicated": "too few replicas confirmed the write; check the replicas, or DISPATCH_REDIS_REPLICAS",
    "BusyLoadingError": "it is loading its data after a restart; try again in a moment",
    "TimeoutError": "it did not answer in time; is it overloaded, or the network between? check DISPATCH_RESULTS_URL",
    "ConnectionError": "is Redis running? check DISPATCH_RESULTS_URL",
    "ResponseError": "it refused the command; does DISPATCH_RESULTS_URL point at a Redis server?",
}


def redis_location(url: str) -> str:
    """``Redis at host:port db N`` (its socket path, or its sentinels) for DISPATCH_RESULTS_URL; never the password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"Redis at unix socket {parts.path}"
    if parts.scheme.endswith("+sentinel"):
        from .redis_connect import parse_sentinel_url

        try:
            address = parse_sentinel_url(url)
        except ValueError:
            return "Redis behind Sentinel (a URL that cannot be parsed)"
        sentinels = ", ".join(f"{host}:{port}" for host, port in address.sentinels)
        return f"Redis master {address.service_name!r} of the sentinels at {sentinels} db {address.db}"
    try:
        port = parts.port
    except ValueError:
        port = None
    db = parts.path.strip("/") or dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("db", "0")
    return f"Redis at {parts.hostname or 'localhost'}:{port or 6379} db {db}"


def explain_redis_error(error: BaseException, results_url: str) -> str:
    """A failed Redis command as: which Redis, what it said, and what to check; no secret in it."""
    names = [cls.__name__ for cls in type(error).__mro__]
    fix = next((_FIXES[name] for name in names if name in _FIXES), "check DISPATCH_RESULTS_URL")
    said = str(error).strip()
    why = f"{type(error).__name__}: {said}" if said else type(error).__name__
    return redact(f"cannot use the results store, {redis_location(results_url)} ({why}): {fix}")


def store_error_message(error: BaseException, results_url: str) -> str | None:
    """What to tell a user about ``error`` if it is the results store's (ours or redis-py's), else None."""
    if isinstance(error, ResultsUnavailable):
        return str(error)
    if type(error).__module__.startswith("redis"):  # recognised by name: redis-py may not be imported yet
        return explain_redis_error(error, results_url)
    return None


@contextmanager
def mapped_redis_errors(results_url: str) -> Iterator[None]:
    """Within the block, any redis-py error is raised as :class:`ResultsUnavailable` (the original as its cause)."""
    import redis.exceptions

    try:
        yield
    except redis.exceptions.RedisError as error:
        raise ResultsUnavailable(explain_redis_error(error, results_url)) from error

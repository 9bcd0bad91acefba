"""The deadline on a whole attempt: connect, headers, body and redirects together.

urllib3's timeout bounds each socket operation, not the whole answer, so a
server dripping one byte a second -- in its headers or its body -- would
otherwise hold a thread for as long as it liked.  A watchdog thread shuts
the attempt's sockets down when its deadline passes (:class:`Deadline`); the
read then ends at once.  The pools the transport makes connections with
(:func:`watched`) register each connection with the deadline of the attempt
their thread is making.

A name lookup has no socket to shut down: ``getaddrinfo`` blocks for as
long as the resolver likes.  So the attempt's lookups run in a few threads
of their own (:func:`within_deadline`) and the attempt waits for one only
until its deadline; the watched connections look their host up that way and
connect to the addresses found, and the destination policy's lookup is run
so by the transport -- and by the gateway, outside any attempt (:func:`lookup_within`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

#: Threads per process that run name lookups for attempts (a lookup that hangs holds one until the resolver gives up).
LOOKUP_THREADS = 16

T = TypeVar("T")


class Deadline:
    """One attempt's deadline: when it passes, the sockets the attempt is using are shut down.

    A socket shut down under a blocked read wakes it with end-of-file at
    once, however slowly the server was dripping its headers or body; the
    attempt then reports a timeout (``expired``).  The connections are
    registered by the connection classes below, from the attempt's own
    thread, each time one connects or sends a request, while the thread is
    inside ``with deadline:``.  Their sockets are kept as well: http.client
    lets go of a connection's socket (``sock = None``) as soon as an answer
    says ``Connection: close``, while the body is still to be read from it.
    """

    __slots__ = ("at", "connections", "expired", "finished", "lock", "previous", "seconds", "sockets")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.connections: list[HTTPConnection] = []
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.finished = False
        self.previous: Deadline | None = None

    @property
    def message(self) -> str:
        """What a timed-out attempt reports."""
        return f"timed out after {self.seconds:g}s (connect, headers and body of one attempt)"

    def __enter__(self) -> Deadline:
        """Enforce the deadline on the connections this thread uses until the block ends."""
        self.previous, _current.deadline = getattr(_current, "deadline", None), self
        _WATCHDOG.add(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.finish()
        _current.deadline = self.previous

    def watch(self, connection: HTTPConnection) -> None:
        with self.lock:
            if self.finished:
                return
            self.connections.append(connection)
            if connection.sock is not None:
                self.sockets.append(connection.sock)
            if self.expired:  # too late already: cut it at once
                _shut_down(connection.sock)

    def forget(self) -> None:
        """Let go of the connections (before they go back to the pool, maybe to another thread)."""
        with self.lock:
            self.connections.clear()
            self.sockets.clear()

    def finish(self) -> None:
        with self.lock:
            self.finished = True
            self.connections.clear()
            self.sockets.clear()

    def expire(self) -> None:
        with self.lock:
            if self.finished:
                return
            self.expired = True
            for sock in [*self.sockets, *(connection.sock for connection in self.connections)]:
                _shut_down(sock)


def _shut_down(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError, TypeError, AttributeError):
            # socket.socket's own shutdown, also for an SSLSocket: its override would drop the TLS state
            # under the reading thread's feet; the raw shutdown just makes that read end.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per process that expires deadlines when they pass (started on first use)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._compact_at = 4096
        self._sequence = itertools.count()

    def add(self, deadline: Deadline) -> None:
        with self._condition:
            if self._pid != os.getpid():  # first use, or a forked child: the parent's thread is not here
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="dispatch-deadlines", daemon=True).start()
            if len(self._heap) >= self._compact_at:  # finished deadlines wait in the heap until their time
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
                self._compact_at = max(4096, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline.at, next(self._sequence), deadline))
            if self._heap[0][2] is deadline:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                deadline = heapq.heappop(self._heap)[2]
            deadline.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()  # the deadline of the attempt this thread is making


class _Lookups:
    """The threads name lookups run in, made on first use in each process (a forked child has none of its parent's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._executor = concurrent.futures.ThreadPoolExecutor(LOOKUP_THREADS, "dispatch-lookup")
            return self._executor


_LOOKUPS = _Lookups()


def within_deadline(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` -- a name lookup -- given only until the current attempt's deadline.

    Outside an attempt it is simply called.  When the deadline passes first,
    the attempt's deadline is expired (so it reports its timeout) and
    ``TimeoutError`` is raised; the lookup is left to finish in its thread.
    """
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is None:
        return function(*args)
    future = _LOOKUPS.executor().submit(function, *args)
    try:
        return future.result(timeout=max(0.0, deadline.at - time.monotonic()))
    except concurrent.futures.TimeoutError:
        future.cancel()
        deadline.expire()
        raise TimeoutError(f"name lookup still running at the deadline ({deadline.seconds:g}s)") from None


def lookup_within(seconds: float, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` -- a name lookup -- given ``seconds`` outside an attempt; TimeoutError after.

    For a lookup no attempt bounds, such as the gateway's destination check:
    it runs as an attempt's would (:func:`within_deadline`), under a deadline of its own.
    """
    with Deadline(seconds):
        return within_deadline(function, *args)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _watch(connection: HTTPConnection) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _WatchedHTTPConnection(HTTPConnection):
    """Registers the connection (and its socket, once it has one) with the current attempt's deadline.

    Its host is looked up within the deadline too (:func:`within_deadline`),
    then each address found is tried in turn, as ``socket.create_connection``
    would; the host *name* stays what TLS and the ``Host`` header use.
    """

    def _new_conn(self) -> socket.socket:
        name = self._dns_host
        if getattr(_current, "deadline", None) is None or _is_address(name):
            return super()._new_conn()
        try:
            found = within_deadline(socket.getaddrinfo, name, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        failure: NewConnectionError | None = None
        for address in dict.fromkeys(str(info[4][0]) for info in found):
            self._dns_host = address
            try:
                return super()._new_conn()
            except NewConnectionError as exc:  # refused or unreachable: the next address may answer
                failure = exc
            finally:
                self._dns_host = name
        raise failure or NameResolutionError(self.host, self, socket.gaierror(f"{name} has no address"))

    def connect(self) -> None:
        _watch(self)  # the TLS handshake too: the socket is set before it starts
        super().connect()
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)
        _watch(self)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def watched(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """``manager``, making its connections with the classes the attempt's deadline can cut."""
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}
    return manager

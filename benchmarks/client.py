#!/usr/bin/env python
"""The clients: what the benchmark measures, one system per process.

    python benchmarks/client.py SYSTEM PHASE... --base http://127.0.0.1:PORT [--n 3000 ...]

``bench.py`` (through ``launch.Processes.run_client``) starts this script for every
measurement, runs the named phases in order and reads one line, ``RESULT {json}``, with a dict
per phase.  A system here is only *how one call is made*, so the stopwatch (``phases.PHASES``)
is the same for all of them:

* ``dispatch`` -- this package: ``URL(u).send(x=i, y=2)``, ``URL(u).map(...)`` for the bulk phases, and
  ``outbox.send(conn, URL(u), x=i, y=2)`` in one transaction per ``commit`` (with ``--outbox-table``: the
  outbox row, issue 23); the environment (``config.DISPATCH_ENV``) points it at the bench vhost and the
  snapshot of the package;
* ``celery`` -- the Celery 5 port of Celery 3's HTTP task: ``celery_port.URL(u).get_async(...)``;
* ``requests`` / ``urllib3`` -- no queue at all: the request itself, in the calling loop,
  with one ``requests.Session`` or one ``urllib3.PoolManager``.

Every ``send(i)`` returns something with ``get(timeout)`` (the no-queue calls have already
finished: ``_Done``), and every call asks the receiver's ``/multiply`` for ``i * 2``, which the
phases check.  The process ends with ``os._exit`` once the result is printed, so a Celery
client's result-consumer thread cannot keep it alive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import phases


class Client:
    """One system's client: ``send(i)`` and ``ping()`` (``/health``) return something with ``get(timeout)``.

    ``send_many(n)`` (dispatch only: the bulk phases) sends n calls with one ``URL.map``;
    ``commit(first, count)`` (dispatch with an outbox table) writes calls ``first..first+count-1`` to
    the outbox in one transaction and commits it: their handles, and when the commit was issued and returned.
    """

    def __init__(self, system: str, base: str, delay_ms: int = 0, outbox_url: str = "", outbox_table: str = "") -> None:
        self.system = system
        self.multiply = base + "/multiply"
        self.health = base + "/health"
        # delay_ms: the receiver's slow route, the same answer that many milliseconds later.
        slow = {"delay_ms": delay_ms} if delay_ms else {}
        if system == "dispatch":
            from dispatch import URL

            multiply = self.multiply
            self.send = lambda i: URL(multiply).send(x=i, y=2, **slow)
            self.send_many = lambda n: URL(multiply).map({"x": i, "y": 2, **slow} for i in range(n))
            self.ping = lambda: URL(self.health).send()
            if outbox_table:
                self.commit = _outbox_commit(outbox_url, outbox_table, multiply)
        elif system == "celery":
            import celery_port

            multiply = self.multiply
            self.send = lambda i: celery_port.URL(multiply).get_async(x=i, y=2, **slow)
            self.ping = lambda: celery_port.URL(self.health).get_async()
        elif system == "requests":  # the no-queue loops never call the slow route
            import requests

            session = requests.Session()
            self.send = lambda i: _Done(_protocol(session.get(self.multiply, params={"x": i, "y": 2}).content))
            self.ping = lambda: _Done(_protocol(session.get(self.health).content))
        elif system == "urllib3":
            import urllib3

            pool = urllib3.PoolManager()
            self.send = lambda i: _Done(_protocol(pool.request("GET", self.multiply, fields={"x": i, "y": 2}).data))
            self.ping = lambda: _Done(_protocol(pool.request("GET", self.health).data))
        else:
            raise SystemExit(f"unknown system {system!r}")


def _outbox_commit(url: str, table: str, multiply: str) -> Any:
    """``commit(first, count)``: calls first..first+count-1 written to the outbox in one transaction, committed.

    Returns their handles, and the wall-clock times at which ``COMMIT`` was issued and returned.
    """
    from dispatch import URL
    from dispatch.outbox import Outbox

    outbox, target = Outbox(url, table=table), URL(multiply)
    with outbox.engine.connect():  # the pooled connection, and its server process, exist before the CPU is read
        pass

    def commit(first: int, count: int) -> tuple[list[Any], float, float]:
        with outbox.engine.connect() as conn:
            transaction = conn.begin()
            handles = [outbox.send(conn, target, x=i, y=2) for i in range(first, first + count)]
            issued = time.time()
            transaction.commit()
            return handles, issued, time.time()

    return commit


class _Done:
    """A finished no-queue call, with the same ``get()`` as the queued handles."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, timeout: float | None = None) -> Any:
        return self.value


def _protocol(body: bytes) -> Any:
    """The receiver's answer as the queued systems would return it: ``retval``, or an error."""
    answer = json.loads(body)
    if answer.get("status") != "success":
        raise RuntimeError(f"endpoint answered {answer!r}")
    return answer.get("retval")


def main(argv: list[str]) -> None:
    """Run the phases named on the command line against one system and print ``RESULT {json}``."""
    parser = argparse.ArgumentParser(prog="client.py")
    parser.add_argument("system")
    parser.add_argument("phases", nargs="+", choices=list(phases.PHASES))
    parser.add_argument("--base", required=True)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--worker-pid", type=int, default=0)
    parser.add_argument("--receiver-pid", type=int, default=0)
    parser.add_argument("--relay-pid", type=int, default=0, help="the outbox relay (its CPU and PostgreSQL's)")
    parser.add_argument("--outbox-url", default="", help="the outbox's database (outbox_e2e)")
    parser.add_argument("--outbox-table", default="", help="the outbox table (outbox_e2e)")
    parser.add_argument("--transactions", type=int, default=100, help="transactions the outbox_e2e calls go in")
    parser.add_argument("--rate", type=float, default=0, help="outbox_e2e: calls/s offered (0: as fast as it can)")
    parser.add_argument("--memory-calls", type=int, default=10000)
    parser.add_argument("--memory-every", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=0, help="call the slow route: answers this much later")
    parser.add_argument("--slow-every", type=int, default=2000, help="results between two memory samples (slow)")
    args = parser.parse_args(argv)
    client = Client(args.system, args.base, args.delay_ms, args.outbox_url, args.outbox_table)
    out = {}
    for phase in args.phases:
        out[phase] = phases.PHASES[phase](client, args)
    print("RESULT " + json.dumps(out), flush=True)
    # A Celery client keeps a result consumer thread; don't wait for it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])

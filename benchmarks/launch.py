"""Every process a run starts, in the orchestrator: the receiver, the dispatch and Celery workers, the outbox
relay (and the ``dispatch`` commands run to completion), the client processes (``Processes``: each in its own
session, so its whole tree is stopped even on failure), the snapshot of ``dispatch/`` they import, and the
run's progress line.

A free port and waiting for the receiver are the test suite's helpers (``tests/support.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from config import CELERY_ENV, CELERY_QUEUE, CLIENT, DISPATCH_ENV, DISPATCH_WORKER, HERE, ROOT

if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the checkout, for the helpers the test suite shares
from tests.support import free_port, wait_for


def log(message: str) -> None:
    """One timestamped progress line on stdout, flushed (a run takes minutes)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Processes:
    """Every process this run starts, each in its own session, so its whole tree can be stopped."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        log_path: Path | None = None,
    ) -> subprocess.Popen:
        output = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 -- the child holds it
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if log_path:
            output.close()
        self.running.append((name, process))
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
        """``sig`` (SIGTERM: a graceful worker shutdown) to the process group, then SIGKILL if it lingers."""
        self.running = [(n, p) for n, p in self.running if p is not process]
        if process.poll() is None:
            _killpg(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _killpg(process.pid, signal.SIGKILL)
                process.wait()
        _killpg(process.pid, signal.SIGKILL)  # any straggler left in the group

    def stop_all(self) -> None:
        for _name, process in reversed(list(self.running)):
            self.stop(process, timeout=15)

    def run_client(
        self, system: str, phases: list[str], extra: list[str], env: dict[str, str] | None, timeout: float = 900
    ) -> dict[str, Any]:
        """Run ``client.py SYSTEM PHASE...`` to completion; return its ``RESULT`` line, one dict per phase."""
        command = [sys.executable, str(CLIENT), system, *phases, *extra]
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.running.append((f"client {system}", process))
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(process, timeout=5)
            raise RuntimeError(f"client {system} {phases} timed out after {timeout}s") from None
        finally:
            self.running = [(n, p) for n, p in self.running if p is not process]
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        raise RuntimeError(f"client {system} {phases} failed (exit {process.returncode}):\n{stderr[-4000:]}")


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a killed run still stops every process it started."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


def _answers(url: str) -> bool:
    """Whether ``url`` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def receiver_stats(base: str, reset: bool = False) -> dict[str, int]:
    """The receiver's counters: requests, and how many slow answers waited at once at most (``peak_pending``)."""
    with urllib.request.urlopen(base + "/stats" + ("?reset=1" if reset else ""), timeout=5) as response:
        return json.loads(response.read())["retval"]


def start_receiver(procs: Processes, kind: str, build: Path, logs: Path) -> tuple[subprocess.Popen, str, str]:
    """Compile and start the C receiver (or the Node.js one); return it, its base URL and a description."""
    port = free_port()
    if kind == "c":
        compiler = shutil.which("cc") or shutil.which("gcc")
        binary = build / "receiver"
        if (
            compiler
            and subprocess.run(
                [compiler, "-O2", "-o", str(binary), str(HERE / "receiver" / "receiver.c")], capture_output=True
            ).returncode
            == 0
        ):
            command, description = [str(binary), str(port)], "C (epoll, keep-alive), benchmarks/receiver/receiver.c"
        else:
            log("no working C compiler: using the Node.js receiver")
            kind = "node"
    if kind == "node":
        command = ["node", str(HERE / "receiver" / "receiver.js"), str(port)]
        description = "Node.js http (keep-alive), benchmarks/receiver/receiver.js"
    process = procs.start("receiver", command, log_path=logs / "receiver.log.tmp")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(base + "/health"), 20, "the receiver to answer")
    return process, base, description


def snapshot_package(source: Path, build: Path) -> dict[str, Any]:
    """Copy ``source/dispatch`` into ``build/src``, so the whole run measures one version of it.

    Other people edit the working tree while a run is going; without the copy, a worker
    started halfway through could import half-edited code.  Clients and workers import the
    copy (PYTHONPATH, worker cwd); its installed dependencies come from the environment.
    """
    if source.name == "dispatch" and (source / "__init__.py").exists():  # the package itself was named
        source = source.parent
    target = build / "src"
    shutil.copytree(source / "dispatch", target / "dispatch", ignore=shutil.ignore_patterns("__pycache__"))
    DISPATCH_ENV["PYTHONPATH"] = str(target)

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=source, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    # A `git archive` copy outside the repository has no git: a COMMIT file beside dispatch/ names it.
    stamp = source / "COMMIT"
    return {
        "source": str(source),
        "commit": git("rev-parse", "HEAD") or (stamp.read_text().strip() if stamp.exists() else ""),
        "dirty": bool(git("status", "--porcelain", "--", "dispatch")),
    }


def start_dispatch_worker(
    procs: Processes,
    logs: Path,
    tag: str,
    processes: int | None = None,
    threads: int | None = None,
    *,
    gevent: bool = False,
    module: str = "dispatch.tasks",
    pythonpath: tuple[Path, ...] = (),
) -> subprocess.Popen:
    """``dramatiq dispatch.tasks`` in the shape of ``DISPATCH_WORKER`` (or the one given), on the snapshot.

    ``gevent`` runs dramatiq's own ``dramatiq-gevent`` command (everything monkey-patched, the
    threads greenlets); ``module`` and ``pythonpath`` run another actor module (benchmarks/models/).
    """
    if gevent:
        head = [sys.executable, str(Path(sys.executable).parent / "dramatiq-gevent")]
    else:
        head = [sys.executable, "-m", "dramatiq"]
    command = [
        *head,
        module,
        "--processes",
        str(processes or DISPATCH_WORKER["processes"]),
        "--threads",
        str(threads or DISPATCH_WORKER["threads"]),
    ]
    env = {**DISPATCH_ENV, **DISPATCH_WORKER["env"]}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *map(str, pythonpath)])
    # cwd is the snapshot, so `-m dramatiq` finds the snapshot's dispatch first on sys.path.
    return procs.start(
        f"dispatch worker {tag}",
        command,
        env=env,
        cwd=Path(DISPATCH_ENV["PYTHONPATH"]),
        log_path=logs / f"dispatch-worker-{tag}.log.tmp",
    )


def dispatch_cli(args: list[str], env: dict[str, str]) -> str:
    """Run ``dispatch ARGS...`` (``python -m dispatch.cli``) on the snapshot to completion; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "dispatch.cli", *args],
        env={**os.environ, **DISPATCH_ENV, **env},
        cwd=DISPATCH_ENV["PYTHONPATH"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode:
        raise RuntimeError(f"dispatch {' '.join(args)} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def start_relay(procs: Processes, logs: Path, env: dict[str, str], table: str) -> subprocess.Popen:
    """``dispatch relay --table TABLE`` on the snapshot, its own process; returned once it is listening."""
    log_path = logs / "dispatch-relay.log.tmp"
    process = procs.start(
        "dispatch relay",
        [sys.executable, "-m", "dispatch.cli", "relay", "--table", table],
        env={**DISPATCH_ENV, **env},
        cwd=Path(DISPATCH_ENV["PYTHONPATH"]),
        log_path=log_path,
    )

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dispatch relay exited ({process.returncode}): {log_path.read_text()[-2000:]}")
        return "relaying" in log_path.read_text()

    wait_for(listening, 30, "the relay to listen")
    return process


def start_celery_worker(procs: Processes, pool: str, concurrency: int, logs: Path) -> subprocess.Popen:
    """A Celery port worker on ``CELERY_QUEUE`` without gossip, mingle or heartbeat (the fastest settings)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_port",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-Q",
        CELERY_QUEUE,
        "-n",
        f"bench-{pool}-{concurrency}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "WARNING",
    ]
    return procs.start(
        f"celery worker {pool} {concurrency}",
        command,
        env=CELERY_ENV,
        cwd=HERE,
        log_path=logs / f"celery-worker-{pool}-{concurrency}.log.tmp",
    )


def celery_command(pool: str, concurrency: int) -> str:
    """The worker command line as the report shows it."""
    return (
        f"celery -A celery_port worker -P {pool} -c {concurrency} --without-gossip --without-mingle --without-heartbeat"
    )

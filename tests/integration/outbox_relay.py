"""Relay processes for the outbox tests: a real relay, or one that stops dead at a chosen moment.

    python tests/integration/outbox_relay.py URL TABLE [--pause before-publish|after-publish]

``--pause`` makes the relay print ``paused <moment>`` and sleep forever once it
has claimed a batch, just before publishing it (``before-publish``) or just
after RabbitMQ confirmed it, before the rows are deleted (``after-publish``)
-- where a test kills it with SIGKILL.  Without it, this is what ``dispatch
relay`` runs.  :class:`RelayProcess` starts one from a test.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The PostgreSQL the tests use (trust auth, database ``test``), as ``make services`` starts it.
POSTGRES_URL = os.environ.get("DISPATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class RelayProcess:
    """A relay subprocess on ``table``; its output goes to ``log_path``."""

    def __init__(self, log_path: Path, url: str, table: str, pause: str | None = None) -> None:
        self.log_path = log_path
        self.log_file = open(log_path, "w")  # noqa: SIM115 -- closed in stop()
        command = [sys.executable, __file__, url, table, *(["--pause", pause] if pause else [])]
        self.process = subprocess.Popen(command, stdout=self.log_file, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.process.poll() is None, f"the relay exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} from the relay after {timeout}s:\n{self.log()}"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no handler runs, no transaction is ended by the relay itself."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_file.close()


def _pausing(moment: str, publish: Any) -> Any:
    def pause_forever() -> None:
        print(f"paused {moment}", flush=True)
        while True:
            time.sleep(3600)

    def publish_then_pause(*args: Any, **kwargs: Any) -> Any:
        if moment == "before-publish":
            pause_forever()
        published = publish(*args, **kwargs)
        pause_forever()
        return published

    return publish_then_pause


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("table")
    parser.add_argument("--pause", choices=["before-publish", "after-publish"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("pika").setLevel(logging.WARNING)

    import dispatch.outbox.relay as relay_module
    from dispatch.outbox import Outbox, run_relay

    if args.pause:
        relay_module.publish_many = _pausing(args.pause, relay_module.publish_many)
    run_relay(Outbox(args.url, table=args.table))


if __name__ == "__main__":
    main()

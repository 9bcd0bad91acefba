"""``python manage.py dispatch_relay``: ``dispatch relay`` on the database Django uses."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .....outbox import run_relay
from ...sending import DjangoOutbox


class Command(BaseCommand):
    help = "Publish the calls committed to the dispatch outbox table, and delete each once RabbitMQ confirmed it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="One pass: publish what is committed now, then exit.")
        parser.add_argument("--database", default="default", help="The DATABASES alias whose outbox to relay.")
        parser.add_argument("--batch-size", type=int, default=500, help="Rows claimed per transaction.")
        parser.add_argument(
            "--poll-interval", type=float, default=1.0, help="Seconds between passes when no NOTIFY wakes it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not logging.getLogger().handlers:  # the relay's start, failures and reconnections, on stderr
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        outbox = DjangoOutbox(options["database"]).sqlalchemy()
        try:
            relayed = run_relay(
                outbox, once=options["once"], batch_size=options["batch_size"], poll_interval=options["poll_interval"]
            )
        finally:
            outbox.engine.dispose()
        if options["once"]:
            self.stdout.write(f"relayed {relayed} call(s)")

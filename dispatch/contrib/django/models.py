"""The outbox table as a Django model, so ``migrate`` creates it (the layout of :mod:`dispatch.outbox.table`).

Rows are written by ``outbox.send`` and deleted by the relay; the model is
for the migration and for looking (``OutboxCall.objects.count()`` is the
backlog), not for writing calls by hand.
"""

from __future__ import annotations

from django.db import models

from ...outbox.table import DEFAULT_TABLE


class OutboxCall(models.Model):
    """A call committed and not yet published."""

    id = models.BigAutoField(primary_key=True)
    message_id = models.CharField(max_length=64, unique=True)
    queue_name = models.CharField(max_length=255)
    message = models.BinaryField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = DEFAULT_TABLE
        ordering = ("id",)

    def __str__(self) -> str:
        return f"call {self.message_id} for {self.queue_name}"

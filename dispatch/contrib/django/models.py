"""The outbox table and its ``_dead`` table as Django models, so ``migrate`` creates them (the layout of
:mod:`dispatch.outbox.table`).

Rows are written by ``outbox.send`` and deleted by the relay; the model is
for the migration and for looking (``OutboxCall.objects.count()`` is the
backlog), not for writing calls by hand.  A row the relay cannot decode is
moved to ``dispatch_outbox_dead`` (:class:`OutboxDeadCall`), for a person to look at.
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


class OutboxDeadCall(models.Model):
    """A row the relay could not decode, moved out of the outbox: when and why."""

    id = models.BigIntegerField(primary_key=True)
    message_id = models.CharField(max_length=64)
    queue_name = models.CharField(max_length=255)
    message = models.BinaryField()
    created_at = models.DateTimeField()
    failed_at = models.DateTimeField()
    reason = models.TextField()

    class Meta:
        db_table = f"{DEFAULT_TABLE}_dead"
        ordering = ("id",)

    def __str__(self) -> str:
        return f"undecodable row {self.id} (call {self.message_id}): {self.reason}"

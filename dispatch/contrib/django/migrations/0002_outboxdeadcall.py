"""Creates dispatch_outbox_dead, where the relay moves a row it cannot decode (what Outbox.create_table() makes)."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0001_initial")]  # noqa: RUF012 -- Django's migration format

    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="OutboxDeadCall",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("message_id", models.CharField(max_length=64)),
                ("queue_name", models.CharField(max_length=255)),
                ("message", models.BinaryField()),
                ("created_at", models.DateTimeField()),
                ("failed_at", models.DateTimeField()),
                ("reason", models.TextField()),
            ],
            options={"db_table": "dispatch_outbox_dead", "ordering": ("id",)},
        ),
    ]

"""Creates the outbox table: the layout of dispatch.outbox.table (what Outbox.create_table() makes)."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []  # noqa: RUF012 -- Django's migration format

    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="OutboxCall",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("message_id", models.CharField(max_length=64, unique=True)),
                ("queue_name", models.CharField(max_length=255)),
                ("message", models.BinaryField()),
                ("created_at", models.DateTimeField()),
            ],
            options={"db_table": "dispatch_outbox", "ordering": ("id",)},
        ),
    ]

"""The Django app's configuration: ``"dispatch.contrib.django"`` in ``INSTALLED_APPS``, label ``dispatch``."""

from __future__ import annotations

from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch.contrib.django"
    label = "dispatch"
    verbose_name = "dispatch outbox"
    default_auto_field = "django.db.models.BigAutoField"

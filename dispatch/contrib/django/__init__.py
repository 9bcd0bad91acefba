"""The outbox as a Django app: calls sent with ``transaction.atomic()``, relayed by ``manage.py dispatch_relay``.

::

    INSTALLED_APPS = [..., "dispatch.contrib.django"]     # python manage.py migrate creates dispatch_outbox

    from django.db import transaction
    from dispatch import URL
    from dispatch.contrib.django import outbox

    with transaction.atomic():
        order = Order.objects.create(...)
        res = outbox.send(URL("https://billing.example.com/charge", "POST"), order=order.pk)

``outbox`` writes on the ``default`` database; ``DjangoOutbox(using="other")``
on another.  The table, the relay and the guarantees are
:mod:`dispatch.outbox`'s (docs/outbox.md).
"""

from __future__ import annotations

from .sending import DjangoOutbox

#: The outbox of the ``default`` database.
outbox = DjangoOutbox()

__all__ = ["DjangoOutbox", "outbox"]

"""What the application does: save an order and send its call in one transaction (``place``), or fail midway."""

from django.db import transaction

from dispatch import URL
from dispatch.contrib.django import outbox
from shop.models import Order


def place(endpoint: str, total: int, key: str, fail: bool = False) -> str:
    """Save an order and queue a call for it; ``fail`` raises after both, so the transaction rolls back."""
    with transaction.atomic():
        order = Order.objects.create(total=total)
        res = outbox.send(URL(endpoint + "/multiply"), x=order.total, y=2, key=key)
        if fail:
            raise RuntimeError("the order could not be saved")
    return res.message_id

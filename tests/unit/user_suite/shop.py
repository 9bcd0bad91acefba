"""The user's application code: it calls a pricing service through dispatch."""

from __future__ import annotations

from dispatch import URL, CallResult


def quote(service: str, quantity: int, unit_price: int) -> int:
    """The price of an order, computed by the pricing service (GET)."""
    return URL(f"{service}/multiply").send(x=quantity, y=unit_price).get(timeout=10)


def unit_price(service: str, total: int, quantity: int) -> float:
    return URL(f"{service}/divide").send(x=total, y=quantity).get(timeout=10)


def label(service: str, name: str) -> str:
    """A shipping label, upper-cased by the service (POST, form-encoded)."""
    return URL(f"{service}/upper", method="POST").send(name=name).get(timeout=10)


def notify_shipped(service: str, order_ids: list[str]) -> list[CallResult]:
    """Tell the service about shipped orders, without waiting for the answers."""
    return [URL(f"{service}/shipped", method="POST").send(order=order_id) for order_id in order_ids]

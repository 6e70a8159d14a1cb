"""Orders: Shopify's order webhooks (HMAC verified, applied idempotently) and the user's own order list.

An order is matched to a user through its `cart_token`, which Shopify fills in from the cart our
Storefront calls created: the token part of the user's `gid://shopify/Cart/<token>?key=...`. An order for
a cart we don't know (bought on the storefront directly) is acknowledged and not stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from isa.commerce import store
from isa.commerce.settings import ShopifySettings
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.logging import get_logger

log = get_logger(__name__)
ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    }
)
PAYMENT = {
    "pending": "pending",
    "authorized": "authorized",
    "partially_paid": "pending",
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "voided",
    "expired": "failed",
}
FULFILLMENT = {None: "unfulfilled", "partial": "partial", "fulfilled": "fulfilled", "restocked": "restocked"}
MAX_LINE_ITEMS = 250


def shopify_hmac(payload: bytes, secret: str) -> str:
    """X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256 over the raw body with the app's secret."""
    return base64.b64encode(hmac.new(secret.encode(), payload, hashlib.sha256).digest()).decode()


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        raise ApiError(400, "invalid_order", "an amount in the order is not a number") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e11"):
        raise ApiError(400, "invalid_order", "an amount in the order is out of range")
    return amount


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_order", "a timestamp in the order is malformed") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _line_items(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    keep = ("title", "variant_title", "quantity", "price", "sku", "vendor", "product_id", "variant_id")
    return [{k: item.get(k) for k in keep} for item in items[:MAX_LINE_ITEMS] if isinstance(item, dict)]


def parse_order(order: dict[str, Any], webhook_id: str) -> store.OrderIn:
    """The order as we keep it. The shipping address is reduced to city/region/country (no names, no street)."""
    order_id = order.get("id")
    if not isinstance(order_id, int | str) or not str(order_id).strip() or len(str(order_id)) > 64:
        raise ApiError(400, "invalid_order", "the order has no id")
    currency = str(order.get("currency") or "USD").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ApiError(400, "invalid_order", "the order's currency is not an ISO code")
    cancelled_at = _when(order.get("cancelled_at"))
    payment = PAYMENT.get(str(order.get("financial_status") or "pending"), "pending")
    fulfillment = FULFILLMENT.get(order.get("fulfillment_status"), "unfulfilled")
    if cancelled_at is not None:
        status = "cancelled"
    elif fulfillment == "fulfilled" and payment == "paid":
        status = "completed"
    else:
        status = "confirmed"
    address = order.get("shipping_address")
    shipping_address = (
        {k: address.get(k) for k in ("city", "province_code", "country_code")} if isinstance(address, dict) else None
    )
    shipping_set = (order.get("total_shipping_price_set") or {}).get("shop_money") or {}
    updated_at = _when(order.get("updated_at")) or _when(order.get("created_at")) or datetime.now(UTC)
    return store.OrderIn(
        shopify_order_id=str(order_id),
        order_number=str(order.get("name") or order.get("order_number") or "")[:64],
        status=status,
        payment_status=payment,
        fulfillment_status=fulfillment,
        currency=currency,
        line_items=_line_items(order.get("line_items")),
        shipping_address=shipping_address,
        subtotal=_amount(order.get("subtotal_price")),
        tax=_amount(order.get("total_tax")),
        shipping=_amount(shipping_set.get("amount")),
        total=_amount(order.get("total_price")),
        placed_at=_when(order.get("processed_at")) or _when(order.get("created_at")),
        cancelled_at=cancelled_at,
        shopify_updated_at=updated_at,
        webhook_id=webhook_id[:255],
    )


class OrderService:
    def __init__(self, db: Database, settings: ShopifySettings) -> None:
        self.db = db
        self.settings = settings

    async def handle_webhook(self, payload: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """Verify one delivery and apply it; the same delivery twice, or an older one late, changes nothing."""
        if not self.settings.webhook_secret:
            raise ApiError(503, "not_configured", "the Shopify webhook secret is not configured")
        given = headers.get("x-shopify-hmac-sha256", "")
        if not given or not hmac.compare_digest(
            given.encode(), shopify_hmac(payload, self.settings.webhook_secret).encode()
        ):
            log.warning("shopify_webhook_rejected", reason="bad signature")
            raise ApiError(401, "invalid_signature", "the X-Shopify-Hmac-Sha256 header does not verify")
        topic = headers.get("x-shopify-topic", "")
        webhook_id = headers.get("x-shopify-webhook-id") or headers.get("x-shopify-event-id") or ""
        if topic not in ORDER_TOPICS:
            return {"received": True, "topic": topic, "outcome": "ignored: not an order topic"}
        try:
            order = json.loads(payload)
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_order", "the order is not JSON") from None
        if not isinstance(order, dict):
            raise ApiError(400, "invalid_order", "the order is not a JSON object")
        parsed = parse_order(order, webhook_id)
        token = order.get("cart_token")
        async with self.db.transaction() as conn:
            cart = await store.cart_by_token(conn, token) if isinstance(token, str) and token else None
            if cart is None:
                outcome = "ignored: no cart of ours"
            else:
                outcome = await store.upsert_order(conn, cart.user_id, cart.id, parsed)
                await store.retire_cart(conn, cart.user_id, cart.id, "checked_out")
        log.info("shopify_webhook", topic=topic, order_id=parsed.shopify_order_id, outcome=outcome)
        return {"received": True, "topic": topic, "order_id": parsed.shopify_order_id, "outcome": outcome}

    async def orders(self, user_id: str, ref: str | None = None, limit: int = 20) -> dict[str, Any]:
        """The user's own orders, newest first, or the one named by `ref`."""
        async with self.db.connection() as conn:
            if ref:
                row = await store.order_for(conn, user_id, ref.strip())
                rows = [row] if row else []
            else:
                rows = await store.orders_for(conn, user_id, limit)
        if ref and not rows:
            raise ApiError(404, "not_found", "you have no such order")
        return {"count": len(rows), "orders": [order_out(r) for r in rows]}


def order_out(row: dict[str, Any]) -> dict[str, Any]:
    currency = str(row["currency"])
    amount = {k: {"amount": str(row[f"{k}_amount"]), "currency": currency} for k in ("subtotal", "tax", "shipping")}
    return {
        "id": row["id"],
        "shopify_order_id": row["shopify_order_id"],
        "order_number": row["order_number"],
        "status": row["status"],
        "payment_status": row["payment_status"],
        "fulfillment_status": row["fulfillment_status"],
        "items": row["line_items"],
        **amount,
        "total": {"amount": str(row["total_amount"]), "currency": currency},
        "placed_at": row["placed_at"].isoformat() if row["placed_at"] else None,
        "cancelled_at": row["cancelled_at"].isoformat() if row["cancelled_at"] else None,
        "updated_at": row["updated_at"].isoformat(),
    }

"""SQL of the commerce domain: `carts` (a user's Shopify cart id and a snapshot) and `orders` (from webhooks).

Every read and write of a user's rows filters by the user id the service got from the verified principal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_all, fetch_one

CART_COLUMNS = "id::text AS id, user_id, status, shopify_cart_id, checkout_url, currency, cart_data, item_count"
ORDER_COLUMNS = (
    "id::text AS id, shopify_order_id, order_number, status, payment_status, fulfillment_status, currency, "
    "line_items, subtotal_amount, tax_amount, shipping_amount, total_amount, placed_at, cancelled_at, "
    "created_at, updated_at"
)


@dataclass(frozen=True)
class CartRow:
    id: str
    user_id: str
    status: str
    shopify_cart_id: str | None
    checkout_url: str | None
    currency: str
    cart_data: dict[str, Any]
    item_count: int


@dataclass(frozen=True)
class Snapshot:
    """What the store said a cart holds, kept for the user's history (never shown as a current price)."""

    checkout_url: str | None
    currency: str
    cart_data: dict[str, Any]
    item_count: int
    subtotal: Decimal
    total: Decimal


def _cart(row: dict[str, Any] | None) -> CartRow | None:
    return None if row is None else CartRow(**row)


async def active_cart(conn: DictConnection, user_id: str) -> CartRow | None:
    return _cart(
        await fetch_one(conn, f"SELECT {CART_COLUMNS} FROM carts WHERE user_id = %s AND status = 'active'", (user_id,))
    )


def _snapshot_values(snap: Snapshot) -> tuple[Any, ...]:
    """The snapshot's columns in the order both writes name them (checkout_url ... total_amount)."""
    return snap.checkout_url, snap.currency, Jsonb(snap.cart_data), snap.item_count, snap.subtotal, snap.total


async def insert_active_cart(
    conn: DictConnection, user_id: str, shopify_cart_id: str, snap: Snapshot
) -> CartRow | None:
    """The user's new active cart; None when another request made one first (one active cart per user)."""
    return _cart(
        await fetch_one(
            conn,
            f"""INSERT INTO carts (user_id, shopify_cart_id, checkout_url, currency, cart_data, item_count,
                               subtotal_amount, total_amount)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id) WHERE status = 'active' DO NOTHING
            RETURNING {CART_COLUMNS}""",
            (user_id, shopify_cart_id, *_snapshot_values(snap)),
        )
    )


async def save_snapshot(conn: DictConnection, user_id: str, cart_id: str, snap: Snapshot) -> None:
    await conn.execute(
        """UPDATE carts SET checkout_url = %s, currency = %s, cart_data = %s, item_count = %s,
                  subtotal_amount = %s, total_amount = %s
           WHERE id = %s AND user_id = %s AND status = 'active'""",
        (*_snapshot_values(snap), cart_id, user_id),
    )


async def retire_cart(conn: DictConnection, user_id: str, cart_id: str, status: str) -> None:
    """An active cart becomes `abandoned` (expired at the store) or `checked_out` (an order arrived)."""
    await conn.execute(
        "UPDATE carts SET status = %s WHERE id = %s AND user_id = %s AND status = 'active'", (status, cart_id, user_id)
    )


async def cart_by_token(conn: DictConnection, cart_token: str) -> CartRow | None:
    """The cart whose Shopify id is gid://shopify/Cart/<token>[?key=...] (an order's `cart_token`)."""
    return _cart(
        await fetch_one(
            conn,
            f"SELECT {CART_COLUMNS} FROM carts WHERE split_part(shopify_cart_id, '?', 1) = %s",
            ("gid://shopify/Cart/" + cart_token,),
        )
    )


async def recent_carts(conn: DictConnection, user_id: str, limit: int) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        """SELECT id::text AS id, status, currency, cart_data, item_count, subtotal_amount, total_amount,
                  created_at, updated_at
           FROM carts WHERE user_id = %s ORDER BY created_at DESC LIMIT %s""",
        (user_id, limit),
    )


@dataclass(frozen=True)
class OrderIn:
    shopify_order_id: str
    order_number: str
    status: str
    payment_status: str
    fulfillment_status: str
    currency: str
    line_items: list[dict[str, Any]]
    shipping_address: dict[str, Any] | None
    subtotal: Decimal
    tax: Decimal
    shipping: Decimal
    total: Decimal
    placed_at: datetime | None
    cancelled_at: datetime | None
    shopify_updated_at: datetime
    webhook_id: str


async def upsert_order(conn: DictConnection, user_id: str, cart_id: str | None, order: OrderIn) -> str:
    """Insert or refresh an order: "inserted", "updated", or "unchanged" when this or a newer version is stored.

    Keyed by Shopify's order id, so a redelivered webhook changes nothing; ordered by Shopify's updated_at,
    so a late delivery of an older version does not overwrite a newer one.
    """
    meta = {"shopify_updated_at": order.shopify_updated_at.isoformat(), "webhook_id": order.webhook_id}
    row = await fetch_one(
        conn,
        """INSERT INTO orders (user_id, cart_id, shopify_order_id, order_number, status, payment_status,
                               fulfillment_status, currency, line_items, shipping_address, subtotal_amount,
                               tax_amount, shipping_amount, total_amount, metadata, placed_at, cancelled_at)
           VALUES (%(user)s, %(cart)s, %(oid)s, %(num)s, %(status)s, %(pay)s, %(ful)s, %(cur)s, %(items)s, %(addr)s,
                   %(sub)s, %(tax)s, %(ship)s, %(total)s, %(meta)s, %(placed)s, %(cancelled)s)
           ON CONFLICT (shopify_order_id) DO UPDATE SET
               status = EXCLUDED.status, payment_status = EXCLUDED.payment_status,
               fulfillment_status = EXCLUDED.fulfillment_status, line_items = EXCLUDED.line_items,
               shipping_address = EXCLUDED.shipping_address, subtotal_amount = EXCLUDED.subtotal_amount,
               tax_amount = EXCLUDED.tax_amount, shipping_amount = EXCLUDED.shipping_amount,
               total_amount = EXCLUDED.total_amount, metadata = orders.metadata || EXCLUDED.metadata,
               cancelled_at = EXCLUDED.cancelled_at
           WHERE orders.user_id = EXCLUDED.user_id
             AND coalesce((orders.metadata ->> 'shopify_updated_at')::timestamptz, '-infinity')
                 < (EXCLUDED.metadata ->> 'shopify_updated_at')::timestamptz
           RETURNING (xmax = 0) AS inserted""",
        {
            "user": user_id,
            "cart": cart_id,
            "oid": order.shopify_order_id,
            "num": order.order_number,
            "status": order.status,
            "pay": order.payment_status,
            "ful": order.fulfillment_status,
            "cur": order.currency,
            "items": Jsonb(order.line_items),
            "addr": Jsonb(order.shipping_address) if order.shipping_address is not None else None,
            "sub": order.subtotal,
            "tax": order.tax,
            "ship": order.shipping,
            "total": order.total,
            "meta": Jsonb(meta),
            "placed": order.placed_at,
            "cancelled": order.cancelled_at,
        },
    )
    if row is None:
        return "unchanged"
    return "inserted" if row["inserted"] else "updated"


async def orders_for(conn: DictConnection, user_id: str, limit: int) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = %s ORDER BY coalesce(placed_at, created_at) DESC LIMIT %s",
        (user_id, limit),
    )


async def order_for(conn: DictConnection, user_id: str, ref: str) -> dict[str, Any] | None:
    """One of the user's orders by Shopify order id, order number ("#1001" or "1001") or our id."""
    return await fetch_one(
        conn,
        f"""SELECT {ORDER_COLUMNS} FROM orders
            WHERE user_id = %(user)s AND (shopify_order_id = %(ref)s OR order_number = %(ref)s
                  OR ltrim(order_number, '#') = ltrim(%(ref)s, '#') OR id::text = %(ref)s)
            ORDER BY created_at DESC LIMIT 1""",
        {"user": user_id, "ref": ref},
    )

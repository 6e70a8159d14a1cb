"""Wire models of the commerce HTTP routes (the MCP tools answer plain JSON envelopes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Money(BaseModel):
    amount: str
    currency: str


class Order(BaseModel):
    id: str
    shopify_order_id: str | None
    order_number: str | None
    status: str
    payment_status: str
    fulfillment_status: str
    items: list[dict[str, Any]]
    subtotal: Money
    tax: Money
    shipping: Money
    total: Money
    placed_at: str | None
    cancelled_at: str | None
    updated_at: str


class OrderList(BaseModel):
    count: int
    orders: list[Order]


class WebhookResult(BaseModel):
    received: bool
    topic: str
    order_id: str | None = None
    outcome: str

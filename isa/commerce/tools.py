"""MCP tools and `shopify://` resources of the commerce domain. The shopper is always the verified caller.

The resources are templates with one optional query variable, `{?limit}` (`shopify://catalog/collections`
reads as is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ResourceError
from pydantic import Field

from isa.commerce.insights import Insights
from isa.commerce.orders import OrderService
from isa.commerce.service import CommerceError, CommerceService, SortBy
from isa.core.errors import ApiError
from isa.mcp.context import current_call
from isa.mcp.envelope import ToolFailure
from isa.mcp.registry import Capabilities, SecurityLevel
from isa.mcp.resources import resource_service

capabilities = Capabilities("isa.commerce")
tool = capabilities.tool
ProductId = Annotated[str, Field(min_length=1, max_length=200, description="a Product id (gid://shopify/Product/...)")]
VariantId = Annotated[
    str, Field(min_length=1, max_length=200, description="a ProductVariant id (gid://shopify/ProductVariant/...)")
]
ItemId = Annotated[str, Field(min_length=1, max_length=300, description="a line_id or variant_id from view_cart")]
Quantity = Annotated[int, Field(ge=1, le=100)]


def _failure(exc: CommerceError) -> ToolFailure:
    retry = math.ceil(exc.retry_after) if exc.retry_after is not None else None
    return ToolFailure("error", exc.code, exc.message, retry_after=retry)


async def _run(method: str, *args: Any, with_user: bool = True) -> dict[str, Any]:
    call = current_call()
    service = call.service("commerce", CommerceService)
    try:
        service.require_store()
        fn = getattr(service, method)
        result: dict[str, Any] = await (fn(call.principal.user_id, *args) if with_user else fn(*args))
        return result
    except CommerceError as exc:
        raise _failure(exc) from None


@tool(
    category="shopify",
    keywords=[
        "find",
        "search",
        "products",
        "shop",
        "shopping",
        "buy",
        "price",
        "cheapest",
        "under",
        "budget",
        "clothes",
        "jacket",
        "store",
        "catalog",
    ],
    untrusted_output=True,
)
async def search_products(
    query: Annotated[str, Field(max_length=200)] = "",
    category: Annotated[str | None, Field(max_length=100, description="a product type")] = None,
    price_min: Annotated[float | None, Field(ge=0, le=1e9)] = None,
    price_max: Annotated[float | None, Field(ge=0, le=1e9)] = None,
    sort_by: SortBy | None = None,
    limit: Annotated[int | None, Field(ge=1, le=50, description="default: the store's page size")] = None,
    cursor: Annotated[str | None, Field(max_length=1000, description="next_cursor of a previous page")] = None,
) -> dict[str, Any]:
    """Find products to buy in the shop by words, product type and price range (e.g. a rain jacket under 100),
    cheapest first with sort_by=price_asc; each result lists its variants with the store's own prices."""
    if price_min is not None and price_max is not None and price_min > price_max:
        raise ToolFailure("invalid_arguments", "invalid_arguments", "price_min is above price_max")
    return await _run("search_products", query, category, price_min, price_max, sort_by, limit, cursor, with_user=False)


@tool(
    category="shopify",
    keywords=["product", "details", "variants", "sizes", "availability", "images", "price"],
    untrusted_output=True,
)
async def get_product_details(product_id: ProductId) -> dict[str, Any]:
    """One product with its variants (price, availability, options), images and description, from the store."""
    return await _run("product_details", product_id, with_user=False)


@tool(category="shopify", scope="write", security=SecurityLevel.MEDIUM, keywords=["cart", "add", "basket", "buy"])
async def add_to_cart(variant_id: VariantId, quantity: Quantity = 1) -> dict[str, Any]:
    """Add a product variant to your cart (kept across sessions); answers with the cart as the store states it."""
    return await _run("add_to_cart", variant_id, quantity)


@tool(category="shopify", keywords=["cart", "basket", "view", "total"])
async def view_cart() -> dict[str, Any]:
    """Your cart: items, quantities and totals, as the store states them now."""
    return await _run("view_cart")


@tool(category="shopify", scope="write", security=SecurityLevel.MEDIUM, keywords=["cart", "quantity", "change"])
async def update_cart_item(item_id: ItemId, quantity: Annotated[int, Field(ge=0, le=100)]) -> dict[str, Any]:
    """Change the quantity of an item in your cart (0 removes it)."""
    return await _run("update_cart_item", item_id, quantity)


@tool(category="shopify", scope="write", security=SecurityLevel.MEDIUM, keywords=["cart", "remove", "delete"])
async def remove_from_cart(item_id: ItemId) -> dict[str, Any]:
    """Remove an item from your cart."""
    return await _run("remove_from_cart", item_id)


@tool(
    category="shopify",
    scope="write",
    # It hands out the link where money is paid: a human approves first, as for every purchase.
    security=SecurityLevel.HIGH,
    keywords=["checkout", "pay", "purchase", "order", "buy"],
)
async def create_checkout() -> dict[str, Any]:
    """Shopify's checkout link for your cart, with the totals the store states now."""
    return await _run("create_checkout")


@tool(category="shopify", keywords=["order", "status", "shipping", "delivery", "purchase", "tracking"])
async def get_order_status(
    order: Annotated[str | None, Field(max_length=100, description="an order number like #1001; empty: all")] = None,
) -> dict[str, Any]:
    """Your orders (newest first), or one of them by order number, with payment and fulfillment status."""
    call = current_call()
    try:
        call.service("commerce", CommerceService).require_store()
        return await call.service("commerce.orders", OrderService).orders(call.principal.user_id, order)
    except CommerceError as exc:
        raise _failure(exc) from None
    except ApiError as exc:
        raise ToolFailure("error", exc.code, exc.message) from None


# ---- shopify:// resources


async def _read(method: str, limit: str, user: bool) -> str:
    user_id, insights = resource_service("commerce.insights", Insights)
    n = min(max(int(limit), 1), 100) if limit.isdigit() else 20
    try:
        fn = getattr(insights, method)
        data = await (fn(user_id, n) if user else fn(n))
    except CommerceError as exc:
        raise ResourceError(f"{exc.code}: {exc.message}") from None
    return json.dumps(data, default=str)


def _reader(method: str, user: bool) -> Callable[..., Any]:
    async def read(limit: str = "") -> str:
        return await _read(method, limit, user)

    read.__qualname__ = read.__name__ = f"{method}_resource"
    return read


# Each resource: URI, name, extra keywords, the Insights method, whether it is the caller's own, description.
# `limit` (1-100, default 20) bounds the entries of each answer.
_RESOURCES: tuple[tuple[str, str, list[str], str, bool, str], ...] = (
    (
        "shopify://catalog/collections{?limit}",
        "shopify_collections",
        ["collections", "catalog"],
        "collections",
        False,
        "The store's collections, read live from the store.",
    ),
    (
        "shopify://knowledge/fashion_guide{?limit}",
        "shopify_fashion_guide",
        ["guide", "sizes", "styles"],
        "fashion_guide",
        False,
        "A guide to the store's assortment: per product type, the price band, vendors, sizes and colours on offer.",
    ),
    (
        "shopify://preferences/user_profiles{?limit}",
        "shopify_user_profile",
        ["preferences", "profile"],
        "user_profile",
        True,
        "Your shopping preferences, from your own carts and orders: product types, vendors, sizes, price band.",
    ),
    (
        "shopify://analytics/shopping_trends{?limit}",
        "shopify_shopping_trends",
        ["trends", "analytics"],
        "shopping_trends",
        True,
        "Your shopping by month (carts, orders, spend) and your most bought items.",
    ),
    (
        "shopify://cache/product_recommendations{?limit}",
        "shopify_recommendations",
        ["recommendations", "similar"],
        "recommendations",
        True,
        "Products the store recommends for what you recently put in your cart (best sellers without history).",
    ),
    (
        "shopify://inventory/stock_alerts{?limit}",
        "shopify_stock_alerts",
        ["stock", "inventory", "alerts"],
        "stock_alerts",
        True,
        "Items of your carts that are out of stock or running low at the store right now.",
    ),
)

for _uri, _name, _keywords, _method, _user, _text in _RESOURCES:
    capabilities.resource(_uri, name=_name, category="shopify", description=_text, keywords=["shopify", *_keywords])(
        _reader(_method, _user)
    )

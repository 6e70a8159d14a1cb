"""Shopping through the Storefront API: search, product details, the user's persistent cart and checkout.

Prices are never made up or remembered: every amount a call returns is the store's answer in that call.
The `carts` row keeps the user's Shopify cart id (so the cart survives restarts and moves between nodes)
and a snapshot of what the store last said it held, for the user's history and insights only.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from isa.commerce import queries as q
from isa.commerce import store
from isa.commerce.settings import CommerceSettings
from isa.commerce.storefront import Storefront, StorefrontError
from isa.core.db import Database
from isa.core.errors import CodedError
from isa.core.logging import get_logger

log = get_logger(__name__)
SortBy = Literal["relevance", "price_asc", "price_desc", "newest", "best_selling", "title"]
SORTS: dict[str, tuple[str, bool]] = {
    "relevance": ("RELEVANCE", False),
    "price_asc": ("PRICE", False),
    "price_desc": ("PRICE", True),
    "newest": ("CREATED_AT", True),
    "best_selling": ("BEST_SELLING", False),
    "title": ("TITLE", False),
}
GID = re.compile(r"^gid://shopify/(?P<kind>[A-Za-z]+)/(?P<id>[A-Za-z0-9_-]+)(\?key=[A-Za-z0-9_-]+)?$")
INVENTORY = frozenset({"quantityAvailable"})  # needs a token scope some stores don't grant


class CommerceError(CodedError):
    """The caller's request failed: not_configured, not_found, cart_empty, or the store's own code..."""


def gid(kind: str, value: str) -> str:
    """A Shopify global id from a gid or a bare numeric/opaque id; anything else is refused."""
    value = value.strip()
    match = GID.fullmatch(value)
    if match:
        if match["kind"] != kind:
            raise CommerceError("invalid_id", f"expected a {kind} id, got a {match['kind']} id")
        return value
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        return f"gid://shopify/{kind}/{value}"
    raise CommerceError("invalid_id", f"{value[:80]!r} is not a {kind} id")


def money(node: Any) -> dict[str, str] | None:
    """The store's MoneyV2 as given: the amount string is passed through, never recomputed."""
    if not isinstance(node, dict) or node.get("amount") is None:
        return None
    return {"amount": str(node["amount"]), "currency": str(node.get("currencyCode", ""))}


def to_decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def edges(connection: Any) -> list[dict[str, Any]]:
    if not isinstance(connection, dict):
        return []
    return [e["node"] for e in connection.get("edges") or [] if isinstance(e, dict) and isinstance(e.get("node"), dict)]


def product_card(node: dict[str, Any]) -> dict[str, Any]:
    prices = node.get("priceRange") or {}
    image = node.get("featuredImage") or {}
    return {
        "id": node.get("id"),
        "title": node.get("title"),
        "handle": node.get("handle"),
        "vendor": node.get("vendor"),
        "product_type": node.get("productType"),
        "tags": node.get("tags") or [],
        "available": bool(node.get("availableForSale")),
        "price_min": money(prices.get("minVariantPrice")),
        "price_max": money(prices.get("maxVariantPrice")),
        "image": image.get("url"),
        "url": node.get("onlineStoreUrl"),
        # The first variants, so an agent can add one to the cart without another call.
        "variants": [
            {
                "id": v.get("id"),
                "title": v.get("title"),
                "available": bool(v.get("availableForSale")),
                "price": money(v.get("price")),
            }
            for v in edges(node.get("topVariants"))
        ],
    }


def _variant(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node.get("id"),
        "title": node.get("title"),
        "sku": node.get("sku"),
        "available": bool(node.get("availableForSale")),
        "quantity_available": node.get("quantityAvailable"),
        "price": money(node.get("price")),
        "compare_at_price": money(node.get("compareAtPrice")),
        "options": {o["name"]: o["value"] for o in node.get("selectedOptions") or [] if isinstance(o, dict)},
        "image": (node.get("image") or {}).get("url"),
    }


def search_string(query: str, category: str | None, price_min: float | None, price_max: float | None) -> str:
    """Shopify's search syntax: free text, then field filters (values quoted so input can't add operators)."""
    parts = [query.strip()] if query.strip() else []
    if category and category.strip():
        parts.append('product_type:"{}"'.format(re.sub(r'["\\]', "", category.strip())))
    if price_min is not None:
        parts.append(f"variants.price:>={_number(price_min)}")
    if price_max is not None:
        parts.append(f"variants.price:<={_number(price_max)}")
    return " ".join(parts)


def _number(value: float) -> str:
    """A plain decimal for the search syntax (100, 59.5; never 1e+09)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _in_range(card: dict[str, Any], price_min: float | None, price_max: float | None) -> bool:
    """Drop what the store's own price range puts outside the asked range (search can be fuzzy)."""
    low, high = card["price_min"], card["price_max"]
    if price_max is not None and low and to_decimal(low["amount"]) > Decimal(str(price_max)):
        return False
    return not (price_min is not None and high and to_decimal(high["amount"]) < Decimal(str(price_min)))


class CommerceService:
    def __init__(self, db: Database, settings: CommerceSettings, storefront: Storefront | None) -> None:
        self.db = db
        self.settings = settings
        self.storefront = storefront

    async def close(self) -> None:
        if self.storefront is not None:
            await self.storefront.close()

    def require_store(self) -> Storefront:
        """The store's client; every commerce tool answers `not_configured` without one."""
        if self.storefront is None:
            raise CommerceError(
                "not_configured",
                "no Shopify store is configured (commerce.shopify.store_domain and "
                "ISA_COMMERCE__SHOPIFY__STOREFRONT_TOKEN)",
            )
        return self.storefront

    async def call(
        self, document: str, variables: dict[str, Any], tolerate: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """One Storefront operation; store failures become CommerceError with the store's code."""
        storefront = self.require_store()
        try:
            return await storefront.execute(document, variables, tolerate=tolerate)
        except StorefrontError as exc:
            raise CommerceError(exc.code, exc.message, exc.retry_after) from None

    # ---- products

    async def search_products(
        self,
        query: str,
        category: str | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
        sort_by: SortBy | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        text = search_string(query, category, price_min, price_max)
        sort_key, reverse = SORTS[sort_by or ("relevance" if query.strip() else "best_selling")]
        if sort_key == "RELEVANCE" and not query.strip():
            sort_key = "BEST_SELLING"  # Shopify only ranks by relevance against search terms
        first = min(limit or self.settings.shopify.page_size, 50)
        variables = {"first": first, "after": cursor, "query": text or None, "sortKey": sort_key, "reverse": reverse}
        data = await self.call(q.SEARCH_PRODUCTS, variables)
        connection = data.get("products") or {}
        cards = [product_card(n) for n in edges(connection)]
        cards = [c for c in cards if _in_range(c, price_min, price_max)]
        page = connection.get("pageInfo") or {}
        return {
            "query": query,
            "search": text,
            "sort_by": sort_by or ("relevance" if query.strip() else "best_selling"),
            "count": len(cards),
            "products": cards,
            "next_cursor": page.get("endCursor") if page.get("hasNextPage") else None,
        }

    async def product_details(self, product_id: str) -> dict[str, Any]:
        data = await self.call(q.PRODUCT_DETAILS, {"id": gid("Product", product_id)}, INVENTORY)
        node = data.get("product")
        if not isinstance(node, dict):
            raise CommerceError("not_found", "the store has no such product")
        return {
            **product_card(node),
            "description": node.get("description") or "",
            "options": [
                {"name": o.get("name"), "values": [v.get("name") for v in o.get("optionValues") or []]}
                for o in node.get("options") or []
                if isinstance(o, dict)
            ],
            "images": [{"url": i.get("url"), "alt": i.get("altText")} for i in edges(node.get("images"))],
            "variants": [_variant(v) for v in edges(node.get("variants"))],
        }

    # ---- the cart

    async def view_cart(self, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await store.active_cart(conn, user_id)
        if row is None or not row.shopify_cart_id:
            return _cart_out(None)
        cart = (await self.call(q.CART, {"id": row.shopify_cart_id})).get("cart")
        if not isinstance(cart, dict):
            await self._retire(user_id, row.id, "abandoned")
            return {**_cart_out(None), "expired": True}
        await self._snapshot(user_id, row.id, cart)
        return _cart_out(cart)

    async def add_to_cart(self, user_id: str, variant_id: str, quantity: int) -> dict[str, Any]:
        lines = [{"merchandiseId": gid("ProductVariant", variant_id), "quantity": quantity}]
        async with self.db.connection() as conn:
            row = await store.active_cart(conn, user_id)
        replaced = False
        if row is not None and row.shopify_cart_id:
            cart = await self._mutate("cartLinesAdd", q.CART_LINES_ADD, {"cartId": row.shopify_cart_id, "lines": lines})
            if cart is not None:
                await self._snapshot(user_id, row.id, cart)
                return _cart_out(cart)
            await self._retire(user_id, row.id, "abandoned")  # expired at the store: start a new one
            replaced = True
        cart = await self._mutate("cartCreate", q.CART_CREATE, {"input": {"lines": lines}})
        if cart is None:
            raise CommerceError("store_error", "the store created no cart")
        snap = _snapshot(self.settings.shopify.store_domain, cart)
        async with self.db.transaction() as conn:
            created = await store.insert_active_cart(conn, user_id, str(cart["id"]), snap)
            winner = created or await store.active_cart(conn, user_id)
        if created is None:
            if winner is None or not winner.shopify_cart_id:
                raise CommerceError("conflict", "your cart changed at the same moment; try again")
            # A concurrent call made the user's cart first: put these lines there (ours just expires at Shopify).
            variables = {"cartId": winner.shopify_cart_id, "lines": lines}
            cart = await self._mutate("cartLinesAdd", q.CART_LINES_ADD, variables)
            if cart is None:
                raise CommerceError("store_error", "the user's cart disappeared at the store; try again")
            await self._snapshot(user_id, winner.id, cart)
        log.info("cart_created", user_id=user_id, replaced_expired=replaced)
        return {**_cart_out(cart), "new_cart": created is not None, "replaced_expired_cart": replaced}

    async def update_cart_item(self, user_id: str, item_id: str, quantity: int) -> dict[str, Any]:
        row, cart = await self._live_cart(user_id)
        line_id = _line_id(cart, item_id)
        variables = {"cartId": row.shopify_cart_id, "lines": [{"id": line_id, "quantity": quantity}]}
        updated = await self._mutate("cartLinesUpdate", q.CART_LINES_UPDATE, variables)
        return await self._after_change(user_id, row, updated)

    async def remove_from_cart(self, user_id: str, item_id: str) -> dict[str, Any]:
        row, cart = await self._live_cart(user_id)
        variables = {"cartId": row.shopify_cart_id, "lineIds": [_line_id(cart, item_id)]}
        updated = await self._mutate("cartLinesRemove", q.CART_LINES_REMOVE, variables)
        return await self._after_change(user_id, row, updated)

    async def create_checkout(self, user_id: str) -> dict[str, Any]:
        """Shopify's checkout URL for the user's cart, with the totals the store states right now."""
        _row, cart = await self._live_cart(user_id)
        if not edges(cart.get("lines")):
            raise CommerceError("cart_empty", "the cart is empty; add something first")
        url = cart.get("checkoutUrl")
        if not url:
            raise CommerceError("store_error", "the store returned no checkout URL")
        log.info("checkout_created", user_id=user_id)
        return {**_cart_out(cart), "checkout_url": url}

    async def _live_cart(self, user_id: str) -> tuple[store.CartRow, dict[str, Any]]:
        async with self.db.connection() as conn:
            row = await store.active_cart(conn, user_id)
        if row is None or not row.shopify_cart_id:
            raise CommerceError("cart_empty", "you have no cart; add something first")
        cart = (await self.call(q.CART, {"id": row.shopify_cart_id})).get("cart")
        if not isinstance(cart, dict):
            await self._retire(user_id, row.id, "abandoned")
            raise CommerceError("cart_expired", "your cart expired at the store; add items again to start a new one")
        await self._snapshot(user_id, row.id, cart)
        return row, cart

    async def _after_change(self, user_id: str, row: store.CartRow, cart: dict[str, Any] | None) -> dict[str, Any]:
        if cart is None:
            await self._retire(user_id, row.id, "abandoned")
            raise CommerceError("cart_expired", "your cart expired at the store; add items again to start a new one")
        await self._snapshot(user_id, row.id, cart)
        return _cart_out(cart)

    async def _mutate(self, field: str, document: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """The cart a cart mutation returns; None when the cart is gone; userErrors become `cart_rejected`."""
        payload = (await self.call(document, variables)).get(field) or {}
        errors = [e for e in payload.get("userErrors") or [] if isinstance(e, dict)]
        cart = payload.get("cart")
        if errors:
            if cart is None and any("cartId" in (e.get("field") or []) for e in errors):
                return None
            messages = "; ".join(str(e.get("message", "")) for e in errors[:3])
            raise CommerceError("cart_rejected", f"the store refused the change: {messages}")
        return cart if isinstance(cart, dict) else None

    async def _snapshot(self, user_id: str, cart_id: str, cart: dict[str, Any]) -> None:
        snap = _snapshot(self.settings.shopify.store_domain, cart)
        async with self.db.transaction() as conn:
            await store.save_snapshot(conn, user_id, cart_id, snap)

    async def _retire(self, user_id: str, cart_id: str, status: str) -> None:
        async with self.db.transaction() as conn:
            await store.retire_cart(conn, user_id, cart_id, status)


def _line_id(cart: dict[str, Any], item_id: str) -> str:
    """A line of this cart, named by its CartLine id or by the variant it holds."""
    for line in edges(cart.get("lines")):
        merchandise = line.get("merchandise") or {}
        if item_id in (line.get("id"), merchandise.get("id")):
            return str(line["id"])
        match = GID.fullmatch(str(merchandise.get("id", "")))
        if match and match["id"] == item_id.strip():
            return str(line["id"])
    raise CommerceError("not_found", "no such item in your cart (use a line_id or variant_id from view_cart)")


def _line(line: dict[str, Any]) -> dict[str, Any]:
    merchandise = line.get("merchandise") or {}
    product = merchandise.get("product") or {}
    cost = line.get("cost") or {}
    return {
        "line_id": line.get("id"),
        "variant_id": merchandise.get("id"),
        "product_id": product.get("id"),
        "product_title": product.get("title"),
        "variant_title": merchandise.get("title"),
        "vendor": product.get("vendor"),
        "product_type": product.get("productType"),
        "options": {o["name"]: o["value"] for o in merchandise.get("selectedOptions") or [] if isinstance(o, dict)},
        "quantity": line.get("quantity"),
        "available": bool(merchandise.get("availableForSale")),
        "unit_price": money(cost.get("amountPerQuantity")) or money(merchandise.get("price")),
        "line_total": money(cost.get("totalAmount")),
        "image": (merchandise.get("image") or {}).get("url"),
    }


def _cart_out(cart: dict[str, Any] | None) -> dict[str, Any]:
    """The cart as the store states it now. The checkout URL is left out: only create_checkout hands it out."""
    if cart is None:
        return {"item_count": 0, "lines": [], "subtotal": None, "total": None}
    cost = cart.get("cost") or {}
    return {
        "item_count": int(cart.get("totalQuantity") or 0),
        "lines": [_line(line) for line in edges(cart.get("lines"))],
        "subtotal": money(cost.get("subtotalAmount")),
        "total": money(cost.get("totalAmount")),
    }


def _snapshot(store_domain: str, cart: dict[str, Any]) -> store.Snapshot:
    out = _cart_out(cart)
    cost = cart.get("cost") or {}
    total = money(cost.get("totalAmount")) or {"amount": "0", "currency": "USD"}
    currency = total["currency"] if re.fullmatch(r"[A-Z]{3}", total["currency"]) else "USD"
    items = [{k: v for k, v in line.items() if k != "image"} for line in out["lines"]]
    return store.Snapshot(
        checkout_url=cart.get("checkoutUrl"),
        currency=currency,
        cart_data={"store": store_domain, "items": items},
        item_count=out["item_count"],
        subtotal=to_decimal((money(cost.get("subtotalAmount")) or {}).get("amount")),
        total=to_decimal(total["amount"]),
    )

"""What the `shopify://` resources show: the store's live catalog and the caller's own cart and order history.

Nothing here is canned text: collections, the assortment guide, recommendations and stock come from the
store in the same read; the profile and trends are computed from the caller's `carts` and `orders` rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from isa.commerce import queries as q
from isa.commerce import store
from isa.commerce.service import INVENTORY, CommerceService, edges, money, product_card, to_decimal

HISTORY_CARTS = 50
HISTORY_ORDERS = 100


class Insights:
    def __init__(self, service: CommerceService) -> None:
        self.service = service

    async def collections(self, limit: int) -> dict[str, Any]:
        data = await self.service.call(q.COLLECTIONS, {"first": limit, "after": None})
        connection = data.get("collections") or {}
        return {
            "collections": [
                {
                    "id": n.get("id"),
                    "handle": n.get("handle"),
                    "title": n.get("title"),
                    "description": n.get("description") or "",
                    "image": (n.get("image") or {}).get("url"),
                    "updated_at": n.get("updatedAt"),
                }
                for n in edges(connection)
            ],
            "has_more": bool((connection.get("pageInfo") or {}).get("hasNextPage")),
        }

    async def fashion_guide(self, limit: int) -> dict[str, Any]:
        """The store's assortment by product type: price band, vendors, and the sizes/colours on offer."""
        data = await self.service.call(q.ASSORTMENT, {"first": 100, "after": None})
        groups: dict[str, dict[str, Any]] = {}
        for node in edges(data.get("products")):
            kind = node.get("productType") or "Other"
            group = groups.setdefault(
                kind, {"products": 0, "low": None, "high": None, "vendors": Counter(), "options": defaultdict(set)}
            )
            group["products"] += 1
            prices = node.get("priceRange") or {}
            low, high = money(prices.get("minVariantPrice")), money(prices.get("maxVariantPrice"))
            if low and (group["low"] is None or to_decimal(low["amount"]) < to_decimal(group["low"]["amount"])):
                group["low"] = low
            if high and (group["high"] is None or to_decimal(high["amount"]) > to_decimal(group["high"]["amount"])):
                group["high"] = high
            if node.get("vendor"):
                group["vendors"][node["vendor"]] += 1
            for option in node.get("options") or []:
                if isinstance(option, dict) and option.get("name") != "Title":
                    group["options"][option["name"]].update(v.get("name") for v in option.get("optionValues") or [])
        return {
            "categories": [
                {
                    "product_type": kind,
                    "products": g["products"],
                    "price_from": g["low"],
                    "price_to": g["high"],
                    "vendors": [v for v, _ in g["vendors"].most_common(5)],
                    "options": {name: sorted(v for v in values if v) for name, values in g["options"].items()},
                }
                for kind, g in sorted(groups.items(), key=lambda kv: -int(kv[1]["products"]))[:limit]
            ],
            "sampled_products": sum(int(g["products"]) for g in groups.values()),
        }

    async def _history(self, user_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with self.service.db.connection() as conn:
            carts = await store.recent_carts(conn, user_id, HISTORY_CARTS)
            orders = await store.orders_for(conn, user_id, HISTORY_ORDERS)
        return carts, orders

    async def user_profile(self, user_id: str, limit: int) -> dict[str, Any]:
        """Preferences seen in the caller's carts and orders: product types, vendors, sizes and price band."""
        carts, orders = await self._history(user_id)
        types: Counter[str] = Counter()
        vendors: Counter[str] = Counter()
        options: dict[str, Counter[str]] = defaultdict(Counter)
        unit_prices: list[Decimal] = []
        for cart in carts:
            for item in (cart["cart_data"] or {}).get("items", []):
                qty = int(item.get("quantity") or 1)
                types[str(item.get("product_type") or "Other")] += qty
                if item.get("vendor"):
                    vendors[str(item["vendor"])] += qty
                for name, value in (item.get("options") or {}).items():
                    if name != "Title":
                        options[name][str(value)] += qty
                if item.get("unit_price"):
                    unit_prices.append(to_decimal(item["unit_price"].get("amount")))
        for order in orders:
            for line in order["line_items"] or []:
                if line.get("vendor"):
                    vendors[str(line["vendor"])] += int(line.get("quantity") or 1)
                if line.get("price") is not None:
                    unit_prices.append(to_decimal(line["price"]))
        return {
            "based_on": {"carts": len(carts), "orders": len(orders)},
            "favourite_product_types": [t for t, _ in types.most_common(limit)],
            "favourite_vendors": [v for v, _ in vendors.most_common(limit)],
            "preferred_options": {name: c.most_common(1)[0][0] for name, c in options.items() if c},
            "typical_unit_price": _band(unit_prices),
        }

    async def shopping_trends(self, user_id: str, limit: int) -> dict[str, Any]:
        """The caller's activity by month: carts started, orders placed, what was spent (per currency)."""
        carts, orders = await self._history(user_id)
        months: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"carts": 0, "orders": 0, "spent": defaultdict(Decimal)}
        )
        for cart in carts:
            months[cart["created_at"].strftime("%Y-%m")]["carts"] += 1
        items: Counter[str] = Counter()
        for order in orders:
            month = months[(order["placed_at"] or order["created_at"]).strftime("%Y-%m")]
            month["orders"] += 1
            if order["status"] != "cancelled":
                month["spent"][order["currency"]] += order["total_amount"]
            for line in order["line_items"] or []:
                items[str(line.get("title") or "")] += int(line.get("quantity") or 1)
        statuses = Counter(str(c["status"]) for c in carts)
        return {
            "months": [
                {
                    "month": m,
                    "carts": v["carts"],
                    "orders": v["orders"],
                    "spent": {c: str(a) for c, a in v["spent"].items()},
                }
                for m, v in sorted(months.items(), reverse=True)[:limit]
            ],
            "cart_outcomes": dict(statuses),
            "top_items": [{"title": t, "quantity": n} for t, n in items.most_common(limit) if t],
        }

    async def recommendations(self, user_id: str, limit: int) -> dict[str, Any]:
        """The store's related products for what the caller last put in a cart; best sellers without history."""
        carts, _orders = await self._history(user_id)
        seeds = list(
            dict.fromkeys(
                str(item["product_id"])
                for cart in carts
                for item in (cart["cart_data"] or {}).get("items", [])
                if item.get("product_id")
            )
        )[:3]
        seen = set(seeds)
        products: list[dict[str, Any]] = []
        for seed in seeds:
            data = await self.service.call(q.RECOMMENDATIONS, {"productId": seed})
            for node in data.get("productRecommendations") or []:
                if isinstance(node, dict) and str(node.get("id")) not in seen:
                    seen.add(str(node.get("id")))
                    products.append(product_card(node))
        if not seeds:
            found = await self.service.search_products("", sort_by="best_selling", limit=min(limit, 50))
            return {"based_on": "best_sellers", "products": found["products"]}
        return {"based_on": seeds, "products": products[:limit]}

    async def stock_alerts(self, user_id: str, limit: int) -> dict[str, Any]:
        """Live availability of what is in the caller's active cart and recent carts: out of stock or running low."""
        carts, _orders = await self._history(user_id)
        ids = list(
            dict.fromkeys(
                str(item["variant_id"])
                for cart in carts[:10]
                for item in (cart["cart_data"] or {}).get("items", [])
                if item.get("variant_id")
            )
        )[:50]
        if not ids:
            return {"checked": 0, "alerts": []}
        data = await self.service.call(q.VARIANT_STOCK, {"ids": ids}, INVENTORY)
        threshold = self.service.settings.shopify.low_stock_threshold
        alerts = []
        for node in data.get("nodes") or []:
            if not isinstance(node, dict) or not node.get("id"):
                continue
            count = node.get("quantityAvailable")
            if not node.get("availableForSale"):
                kind = "out_of_stock"
            elif isinstance(count, int) and count < threshold:
                kind = "low_stock"
            else:
                continue
            alerts.append(
                {
                    "variant_id": node["id"],
                    "product_title": (node.get("product") or {}).get("title"),
                    "variant_title": node.get("title"),
                    "alert": kind,
                    "quantity_available": count,
                    "price": money(node.get("price")),
                }
            )
        return {"checked": len(ids), "alerts": alerts[:limit]}


def _band(prices: list[Decimal]) -> dict[str, str] | None:
    if not prices:
        return None
    ordered = sorted(prices)
    return {"low": str(ordered[0]), "median": str(ordered[len(ordered) // 2]), "high": str(ordered[-1])}

"""Orders by Shopify's signed webhook into `orders`, each user's own; and the shopify:// resources from real data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.commerce.conftest import Keys, Store
from tests.commerce.test_commerce_shopping import ok
from tests.support.fuzz import run_schemathesis
from tests.support.mcp_servers import mcp_client, sql

pytestmark = pytest.mark.anyio
JACKET_M = "gid://shopify/ProductVariant/201"
FLEECE_S = "gid://shopify/ProductVariant/400"
SCARF = "gid://shopify/ProductVariant/600"


def post_webhook(node: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{node}/api/v1/commerce/webhooks/shopify", content=body, headers=headers, timeout=10)


def active_cart_id(db_url: str, user_id: str) -> str:
    rows = sql(db_url, "SELECT shopify_cart_id FROM carts WHERE user_id = %s AND status = 'active'", (user_id,))
    return str(rows[0]["shopify_cart_id"])


async def read(client: Any, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)


async def test_a_signed_order_webhook_lands_once_in_the_buyers_orders(
    node: str, keys: Keys, shop: Store, db_url: str
) -> None:
    async with mcp_client(node, keys.dave) as dave:
        ok(await dave.call_tool("add_to_cart", {"variant_id": JACKET_M, "quantity": 2}))
    cart_id = active_cart_id(db_url, "dave")
    body, headers = shop.fake.order_webhook(cart_id, order_id=5001, number=1001)
    first = post_webhook(node, body, headers)
    again = post_webhook(node, body, headers)  # Shopify redelivers until it sees a 2xx
    assert first.status_code == 200 and first.json()["outcome"] == "inserted"
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    rows = sql(db_url, "SELECT * FROM orders WHERE shopify_order_id = '5001'")
    assert len(rows) == 1 and rows[0]["user_id"] == "dave"
    assert (rows[0]["order_number"], str(rows[0]["total_amount"]), rows[0]["payment_status"]) == (
        "#1001",
        "173.000",
        "paid",
    )
    assert rows[0]["shipping_address"] == {"city": "Portland", "province_code": "OR", "country_code": "US"}
    carts = sql(db_url, "SELECT status FROM carts WHERE shopify_cart_id = %s", (cart_id,))
    assert carts[0]["status"] == "checked_out"  # the next add_to_cart starts a new cart


async def test_a_webhook_with_a_bad_signature_is_refused_and_stores_nothing(
    node: str, keys: Keys, shop: Store, db_url: str
) -> None:
    async with mcp_client(node, keys.erin) as erin:
        ok(await erin.call_tool("add_to_cart", {"variant_id": SCARF}))
    body, headers = shop.fake.order_webhook(active_cart_id(db_url, "erin"), order_id=6001, secret="not-the-secret")
    refused = post_webhook(node, body, headers)
    unsigned = post_webhook(node, body, {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-Sha256"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_signature"
    assert unsigned.status_code == 401
    assert sql(db_url, "SELECT 1 FROM orders WHERE shopify_order_id = '6001'") == []


async def test_a_late_older_update_does_not_overwrite_a_newer_one(node: str, shop: Store, db_url: str) -> None:
    cart_id = active_cart_id(db_url, "erin")
    newer, newer_headers = shop.fake.order_webhook(
        cart_id,
        order_id=7001,
        number=1002,
        fulfillment_status="fulfilled",
        updated_at="2026-12-02T10:00:00Z",
        topic="orders/fulfilled",
    )
    older, older_headers = shop.fake.order_webhook(
        cart_id, order_id=7001, number=1002, financial_status="pending", updated_at="2026-12-01T10:00:00Z"
    )
    assert post_webhook(node, newer, newer_headers).json()["outcome"] == "inserted"
    assert post_webhook(node, older, older_headers).json()["outcome"] == "unchanged"
    [row] = sql(db_url, "SELECT status, payment_status, fulfillment_status FROM orders WHERE shopify_order_id = '7001'")
    assert row == {"status": "completed", "payment_status": "paid", "fulfillment_status": "fulfilled"}


async def test_an_order_for_a_cart_that_is_not_ours_is_acknowledged_and_not_stored(
    node: str, shop: Store, db_url: str
) -> None:
    stranger = shop.fake._cart_create({"lines": [{"merchandiseId": SCARF, "quantity": 1}]})["cart"]["id"]
    body, headers = shop.fake.order_webhook(stranger, order_id=8001)
    answer = post_webhook(node, body, headers)
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("ignored")
    assert sql(db_url, "SELECT 1 FROM orders WHERE shopify_order_id = '8001'") == []


async def test_each_user_sees_only_their_own_orders(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.dave) as dave, mcp_client(node, keys.erin) as erin:
        dave_orders = ok(await dave.call_tool("get_order_status", {}))
        one = ok(await dave.call_tool("get_order_status", {"order": "#1001"}))
        erin_orders = ok(await erin.call_tool("get_order_status", {}))
        not_erins = await erin.call_tool("get_order_status", {"order": "1001"})
    assert [o["order_number"] for o in dave_orders["orders"]] == ["#1001"]
    assert one["orders"][0]["total"] == {"amount": "173.000", "currency": "USD"}
    assert [o["order_number"] for o in erin_orders["orders"]] == ["#1002"]
    assert not_erins.is_error and not_erins.structured_content is not None
    assert not_erins.structured_content["data"]["code"] == "not_found"
    with httpx.Client(base_url=node, headers={"Authorization": f"Bearer {keys.erin}"}) as http:
        assert http.get("/api/v1/commerce/orders/%231001").status_code == 404
        assert [o["order_number"] for o in http.get("/api/v1/commerce/orders").json()["orders"]] == ["#1002"]
    assert httpx.get(f"{node}/api/v1/commerce/orders").status_code == 401


async def test_the_profile_and_trends_resources_come_from_the_callers_own_history(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.dave) as dave, mcp_client(node, keys.erin) as erin:
        profile = await read(dave, "shopify://preferences/user_profiles")
        trends = await read(dave, "shopify://analytics/shopping_trends")
        erin_trends = await read(erin, "shopify://analytics/shopping_trends")
    assert profile["based_on"] == {"carts": 1, "orders": 1}
    assert profile["favourite_product_types"] == ["Jackets"] and profile["favourite_vendors"] == ["Northwind"]
    assert profile["preferred_options"] == {"Size": "M", "Color": "Navy"}
    assert trends["top_items"] == [{"title": "Drizzle Rain Jacket", "quantity": 2}]
    assert trends["months"][0]["spent"] == {"USD": "173.000"} and trends["cart_outcomes"] == {"checked_out": 1}
    assert [i["title"] for i in erin_trends["top_items"]] == ["Wool Scarf"]


async def test_stock_alerts_show_what_runs_out_in_the_callers_carts(node: str, keys: Keys, shop: Store) -> None:
    _product, scarf = shop.fake.variant(SCARF)
    async with mcp_client(node, keys.erin) as erin:
        ok(await erin.call_tool("add_to_cart", {"variant_id": FLEECE_S}))
        scarf.available = False
        try:
            alerts = await read(erin, "shopify://inventory/stock_alerts")
        finally:
            scarf.available = True
    assert {(a["variant_id"], a["alert"]) for a in alerts["alerts"]} == {
        (SCARF, "out_of_stock"),
        (FLEECE_S, "low_stock"),
    }
    assert next(a for a in alerts["alerts"] if a["variant_id"] == FLEECE_S)["quantity_available"] == 2


async def test_store_resources_read_the_live_catalog(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.dave) as dave:
        collections = await read(dave, "shopify://catalog/collections")
        guide = await read(dave, "shopify://knowledge/fashion_guide?limit=2")
        recommended = await read(dave, "shopify://cache/product_recommendations")
        with pytest.raises(MCPError):
            await dave.read_resource("shopify://nowhere/else")
    assert [c["handle"] for c in collections["collections"]] == ["outerwear", "all"]
    jackets = guide["categories"][0]
    assert len(guide["categories"]) == 2 and jackets["product_type"] == "Jackets" and jackets["products"] == 3
    assert jackets["price_from"]["amount"] == "59.50" and jackets["options"]["Size"] == ["L", "M", "S"]
    assert recommended["based_on"] == ["gid://shopify/Product/2"]
    assert [p["title"] for p in recommended["products"]] == ["Storm Rain Jacket", "Puddle Rain Jacket"]


def test_schemathesis_finds_no_500_on_the_commerce_routes(node: str, keys: Keys, tmp_path: Path) -> None:
    tested, report = run_schemathesis(
        node, keys.erin, tmp_path, paths=r"^/api/v1/commerce", config="", max_examples=10, time_budget=10
    )
    assert tested == 3, report

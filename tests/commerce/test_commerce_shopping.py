"""Shopping over MCP against a fake Storefront API on loopback: search, details, each user's own cart, checkout."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from isa.app import create_app
from isa.core.settings import Settings
from tests.commerce.conftest import Keys, Store, shop_settings
from tests.support.mcp_servers import mcp_client, serve_asgi, sql

pytestmark = pytest.mark.anyio
COMMERCE_TOOLS = {
    "search_products",
    "get_product_details",
    "add_to_cart",
    "view_cart",
    "update_cart_item",
    "remove_from_cart",
    "create_checkout",
    "get_order_status",
}
FLEECE_S = "gid://shopify/ProductVariant/400"
DRIZZLE_M = "gid://shopify/ProductVariant/201"
PUDDLE_S = "gid://shopify/ProductVariant/300"


def ok(result: CallToolResult) -> Any:
    body = result.structured_content
    assert body is not None and not result.is_error, body
    assert body["status"] == "success", body
    return body["data"]


def failed(result: CallToolResult) -> dict[str, Any]:
    body = result.structured_content
    assert body is not None and result.is_error, body
    return {"code": body["data"]["code"], "message": body["error"], **body["data"]}


def active_carts(db_url: str, user_id: str) -> list[dict[str, Any]]:
    return sql(db_url, "SELECT * FROM carts WHERE user_id = %s AND status = 'active'", (user_id,))


async def test_the_commerce_tools_and_the_six_shopify_resources_are_listed(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.alice) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        templates = (await client.list_resource_templates()).resource_templates
    assert set(tools) >= COMMERCE_TOOLS
    assert tools["create_checkout"].meta and tools["create_checkout"].meta["isa/requires_approval"] is True
    uris = sorted(t.uri_template.split("{")[0] for t in templates if t.uri_template.startswith("shopify://"))
    assert uris == [
        "shopify://analytics/shopping_trends",
        "shopify://cache/product_recommendations",
        "shopify://catalog/collections",
        "shopify://inventory/stock_alerts",
        "shopify://knowledge/fashion_guide",
        "shopify://preferences/user_profiles",
    ]


async def test_search_sends_shopify_search_syntax_and_returns_the_stores_own_prices(
    node: str, keys: Keys, shop: Store
) -> None:
    async with mcp_client(node, keys.alice) as client:
        found = ok(
            await client.call_tool(
                "search_products", {"query": "rain jacket", "price_max": 100, "sort_by": "price_asc"}
            )
        )
    assert [p["title"] for p in found["products"]] == ["Puddle Rain Jacket", "Drizzle Rain Jacket"]
    assert found["products"][0]["price_min"] == {"amount": "59.50", "currency": "USD"}
    request = shop.fake.requests[-1]
    assert request["version"] == "2026-04" and request["operation"] == "SearchProducts"
    assert request["headers"]["x-shopify-storefront-access-token"] == shop.fake.token
    assert request["variables"]["query"] == "rain jacket variants.price:<=100"
    assert request["variables"]["sortKey"] == "PRICE" and request["variables"]["reverse"] is False


async def test_search_pages_through_the_catalog_with_the_stores_cursors(node: str, keys: Keys) -> None:
    seen: list[str] = []
    cursor = None
    async with mcp_client(node, keys.alice) as client:
        for _ in range(5):
            args: dict[str, Any] = {"limit": 4, "sort_by": "title"}
            if cursor:
                args["cursor"] = cursor
            page = ok(await client.call_tool("search_products", args))
            seen += [p["title"] for p in page["products"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 6


async def test_product_details_carry_variants_prices_availability_and_images(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.alice) as client:
        product = ok(await client.call_tool("get_product_details", {"product_id": "3"}))
        missing = failed(await client.call_tool("get_product_details", {"product_id": "999"}))
    assert product["id"] == "gid://shopify/Product/3" and product["images"][0]["url"].endswith("/3.jpg")
    assert [(v["title"], v["price"]["amount"], v["available"]) for v in product["variants"]] == [
        ("S", "59.50", True),
        ("M", "59.50", True),
        ("L", "64.50", True),
    ]
    assert product["options"][0] == {"name": "Size", "values": ["S", "M", "L"]}
    assert missing["code"] == "not_found"


async def test_without_the_inventory_scope_details_still_answer_with_counts_left_empty(
    node: str, keys: Keys, shop: Store
) -> None:
    shop.fake.inventory_scope = False
    try:
        async with mcp_client(node, keys.alice) as client:
            product = ok(await client.call_tool("get_product_details", {"product_id": "4"}))
    finally:
        shop.fake.inventory_scope = True
    assert [(v["available"], v["quantity_available"]) for v in product["variants"]] == [(True, None)]


async def test_a_users_concurrent_first_adds_end_in_one_cart_holding_both(node: str, keys: Keys, db_url: str) -> None:
    async with mcp_client(node, keys.carol) as one, mcp_client(node, keys.carol) as two:
        async with anyio.create_task_group() as group:
            group.start_soon(one.call_tool, "add_to_cart", {"variant_id": DRIZZLE_M})
            group.start_soon(two.call_tool, "add_to_cart", {"variant_id": PUDDLE_S})
        cart = ok(await one.call_tool("view_cart", {}))
    assert len(active_carts(db_url, "carol")) == 1
    assert sorted(line["variant_id"] for line in cart["lines"]) == [DRIZZLE_M, PUDDLE_S]


async def test_two_users_carts_are_kept_apart(node: str, keys: Keys, db_url: str) -> None:
    async with mcp_client(node, keys.alice) as alice, mcp_client(node, keys.bob) as bob:
        mine = ok(await alice.call_tool("add_to_cart", {"variant_id": DRIZZLE_M, "quantity": 2}))
        ok(await bob.call_tool("add_to_cart", {"variant_id": FLEECE_S}))
        alice_view = ok(await alice.call_tool("view_cart", {}))
        bob_view = ok(await bob.call_tool("view_cart", {}))
        alice_line = mine["lines"][0]["line_id"]
        foreign = failed(await bob.call_tool("remove_from_cart", {"item_id": alice_line}))
    assert [(line["variant_id"], line["quantity"]) for line in alice_view["lines"]] == [(DRIZZLE_M, 2)]
    assert alice_view["total"] == {"amount": "168.00", "currency": "USD"}
    assert [line["variant_id"] for line in bob_view["lines"]] == [FLEECE_S]
    assert foreign["code"] == "not_found"
    [a], [b] = active_carts(db_url, "alice"), active_carts(db_url, "bob")
    assert a["shopify_cart_id"] != b["shopify_cart_id"]
    assert "checkoutUrl" not in str(alice_view) and "checkout_url" not in alice_view  # only create_checkout gives it


async def test_a_restarted_node_finds_the_users_cart_where_it_was(
    settings: Settings, db_url: str, shop: Store, keys: Keys, node: str
) -> None:
    async with mcp_client(node, keys.alice) as client:
        before = ok(await client.call_tool("view_cart", {}))
    assert before["item_count"] > 0
    fresh = create_app(shop_settings(settings, shop), "mcp", database_url=db_url)  # another process, same database
    with serve_asgi(fresh) as other:
        async with mcp_client(other, keys.alice) as client:
            after = ok(await client.call_tool("view_cart", {}))
    assert after["lines"] == before["lines"] and after["total"] == before["total"]


async def test_quantities_change_and_items_leave_the_cart(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.bob) as bob:
        ok(await bob.call_tool("add_to_cart", {"variant_id": PUDDLE_S}))
        changed = ok(await bob.call_tool("update_cart_item", {"item_id": PUDDLE_S, "quantity": 3}))
        removed = ok(await bob.call_tool("remove_from_cart", {"item_id": FLEECE_S}))
        zeroed = ok(await bob.call_tool("update_cart_item", {"item_id": PUDDLE_S, "quantity": 0}))
    puddle = next(line for line in changed["lines"] if line["variant_id"] == PUDDLE_S)
    assert puddle["quantity"] == 3 and puddle["line_total"] == {"amount": "178.50", "currency": "USD"}
    assert [line["variant_id"] for line in removed["lines"]] == [PUDDLE_S]
    assert zeroed["lines"] == [] and zeroed["item_count"] == 0


async def test_an_expired_cart_is_replaced_by_a_new_one(node: str, keys: Keys, shop: Store, db_url: str) -> None:
    [old] = active_carts(db_url, "bob")
    shop.fake.expire(old["shopify_cart_id"])
    async with mcp_client(node, keys.bob) as bob:
        gone = ok(await bob.call_tool("view_cart", {}))
        added = ok(await bob.call_tool("add_to_cart", {"variant_id": FLEECE_S}))
    assert gone["expired"] is True and gone["lines"] == []
    assert added["new_cart"] is True and [line["variant_id"] for line in added["lines"]] == [FLEECE_S]
    [new] = active_carts(db_url, "bob")
    assert new["shopify_cart_id"] != old["shopify_cart_id"]
    assert sql(db_url, "SELECT status FROM carts WHERE id = %s", (old["id"],))[0]["status"] == "abandoned"


async def test_checkout_waits_for_a_human_then_returns_the_stores_checkout_url(
    node: str, keys: Keys, shop: Store
) -> None:
    async with mcp_client(node, keys.alice) as agent:
        asked = await agent.call_tool("create_checkout", {})
        assert asked.structured_content is not None
        assert asked.structured_content["status"] == "authorization_requested"
        request_id = asked.structured_content["data"]["id"]
        with httpx.Client(base_url=node, headers={"Authorization": f"Bearer {keys.alice_human}"}) as http:
            assert http.post(f"/api/v1/authorizations/{request_id}/approve").is_success
        checkout = ok(await agent.call_tool("create_checkout", {}))
    [cart] = [c for c in shop.fake.carts.values() if checkout["checkout_url"].endswith(f"{c['token']}?key={c['key']}")]
    assert checkout["checkout_url"].startswith("https://isa-test.myshopify.com/cart/c/")
    assert checkout["total"] == {"amount": "168.00", "currency": "USD"} and cart["lines"]


async def test_the_stores_refusal_is_a_clear_tool_error(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.alice) as client:
        unknown = failed(await client.call_tool("add_to_cart", {"variant_id": "gid://shopify/ProductVariant/999"}))
        wrong_kind = failed(await client.call_tool("add_to_cart", {"variant_id": "gid://shopify/Product/1"}))
    assert unknown["code"] == "cart_rejected" and "does not exist" in unknown["message"]
    assert wrong_kind["code"] == "invalid_id"


@pytest.mark.parametrize("kind", ["http", "graphql"])
async def test_a_throttled_store_is_asked_again_after_the_wait_it_names(
    node: str, keys: Keys, shop: Store, kind: str
) -> None:
    shop.fake.throttle(2, kind)
    before = len(shop.fake.requests)
    async with mcp_client(node, keys.alice) as client:
        found = ok(await client.call_tool("search_products", {"query": "scarf"}))
    assert [p["title"] for p in found["products"]] == ["Wool Scarf"]
    assert len(shop.fake.requests) - before == 3


async def test_a_store_that_keeps_throttling_gets_a_bounded_number_of_retries_and_logs_no_token(
    node: str, keys: Keys, shop: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    shop.fake.throttle(10, "graphql")
    before = len(shop.fake.requests)
    try:
        async with mcp_client(node, keys.alice) as client:
            error = failed(await client.call_tool("search_products", {"query": "scarf"}))
    finally:
        shop.fake._throttles.clear()
    assert error["code"] == "store_throttled" and error["retry_after"] >= 1
    assert len(shop.fake.requests) - before == 4  # the first try and max_retries (3) more
    logged = "".join(capfd.readouterr())
    assert "storefront_throttled" in logged and shop.fake.token not in logged


async def test_a_slow_store_times_out_cleanly(settings: Settings, db_url: str, shop: Store, keys: Keys) -> None:
    app = create_app(shop_settings(settings, shop, timeout_seconds=0.5), "mcp", database_url=db_url)
    with serve_asgi(app) as url:
        shop.fake.hang()
        try:
            async with mcp_client(url, keys.alice) as client:
                error = failed(await client.call_tool("search_products", {"query": "scarf"}))
        finally:
            shop.fake.release()
    assert error["code"] == "store_timeout" and "0.5s" in error["message"]


async def test_a_wrong_token_is_named_and_never_echoed(
    settings: Settings, db_url: str, shop: Store, keys: Keys
) -> None:
    app = create_app(shop_settings(settings, shop, storefront_token="wrong-secret-token"), "mcp", database_url=db_url)
    with serve_asgi(app) as url:
        async with mcp_client(url, keys.alice) as client:
            result = await client.call_tool("view_cart", {})
    error = failed(result)
    assert error["code"] == "store_auth_failed"
    assert "wrong-secret-token" not in str(result.structured_content)


async def test_without_a_store_every_commerce_tool_answers_not_configured(
    settings: Settings, db_url: str, keys: Keys
) -> None:
    app = create_app(settings, "mcp", database_url=db_url)
    calls = {
        "search_products": {"query": "jacket"},
        "get_product_details": {"product_id": "1"},
        "add_to_cart": {"variant_id": "101"},
        "view_cart": {},
    }
    with serve_asgi(app) as url:
        async with mcp_client(url, keys.bob) as client:
            codes = {name: failed(await client.call_tool(name, args))["code"] for name, args in calls.items()}
            with pytest.raises(MCPError, match="not_configured"):
                await client.read_resource("shopify://catalog/collections")
    assert set(codes.values()) == {"not_configured"}, codes


async def test_the_six_shopping_prompts_point_at_the_commerce_tools(node: str, keys: Keys) -> None:
    names = (
        "personal_stylist_prompt",
        "product_comparison_prompt",
        "outfit_coordination_prompt",
        "shopping_assistant_prompt",
        "trend_analysis_prompt",
        "size_fit_consultant_prompt",
    )
    async with mcp_client(node, keys.alice) as client:
        listed = {p.name for p in (await client.list_prompts()).prompts}
        texts = [await client.get_prompt(name, {"request": "a rain jacket"}) for name in names]
        tools = {t.name for t in (await client.list_tools()).tools}
    assert set(names) <= listed
    for prompt in texts:
        text = prompt.messages[0].content.text  # type: ignore[union-attr]
        named = {t for t in COMMERCE_TOOLS if t in text}
        assert {"search_products", "add_to_cart", "create_checkout"} <= named <= tools

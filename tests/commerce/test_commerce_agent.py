"""The agent shops: one process serving every role, a scripted model on the fake provider, the fake store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.commerce.conftest import Store, shop_settings
from tests.support.agent import FAKE_MODEL, agent_settings, chat, new_user, sync_catalog
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply, call
from tests.support.mcp_servers import serve_asgi, sql

CHEAPEST = "gid://shopify/ProductVariant/300"  # Puddle Rain Jacket, S, 59.50


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def everything(settings: Settings, db_url: str, shop: Store, llm: FakeOpenAI) -> Iterator[tuple[str, Settings]]:
    """Role all (agent, mcp, model in one process) selling from the fake store; yields (URL, settings)."""
    configured = shop_settings(agent_settings(settings, llm), shop)
    sync_catalog(db_url, configured, extra=())
    with serve_asgi(create_app(configured, "all", database_url=db_url)) as url:
        yield url, configured


def test_the_agent_finds_a_rain_jacket_under_100_and_adds_the_cheapest_to_the_cart(
    everything: tuple[str, Settings], llm: FakeOpenAI, shop: Store, db_url: str
) -> None:
    url, configured = everything
    user, key = new_user(db_url, configured)
    llm.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("search_products", {"query": "rain jacket", "price_max": 100, "sort_by": "price_asc"})]),
        Reply(tool_calls=[call("add_to_cart", {"variant_id": CHEAPEST, "quantity": 1})]),
        Reply(text="Added the Puddle Rain Jacket (59.50 USD) to your cart."),
    )
    before = len(shop.fake.requests)
    result = chat(url, key, {"message": "find a rain jacket under 100 and add the cheapest to my cart"})

    assert result.done and result.error_code is None, result.events
    requests = llm.requests_for(FAKE_MODEL)
    offered = {t["function"]["name"] for t in requests[0].body["tools"]}
    assert {"search_products", "add_to_cart"} <= offered  # discovery picked both for this request
    shown = requests[1].body["messages"][-1]["content"]  # the store's words reach the model marked untrusted
    assert shown.startswith("<untrusted_tool_output>")
    found = json.loads(shown.split("\n", 1)[1].rsplit("\n", 1)[0])["data"]["products"]
    assert [(p["title"], p["variants"][0]["id"], p["variants"][0]["price"]["amount"]) for p in found] == [
        ("Puddle Rain Jacket", CHEAPEST, "59.50"),
        ("Drizzle Rain Jacket", "gid://shopify/ProductVariant/200", "79.00"),
    ]
    assert shop.fake.operations()[before:] == ["SearchProducts", "CartCreate"]  # the two tools, in order
    [cart] = sql(db_url, "SELECT cart_data FROM carts WHERE user_id = %s AND status = 'active'", (user,))
    assert [(i["variant_id"], i["quantity"]) for i in cart["cart_data"]["items"]] == [(CHEAPEST, 1)]

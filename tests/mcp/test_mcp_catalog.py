"""The endpoint with the catalog: discover_tools, imported tools forwarded upstream, the breaker, list_changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from isa.core.settings import Settings
from tests.mcp.conftest import Keys
from tests.support.mcp_servers import (
    SAMPLE_DOMAIN,
    FakeUpstream,
    fake_upstream,
    mcp_client,
    serve_isa,
    with_domains,
)
from tests.support.procs import free_port

pytestmark = pytest.mark.anyio

UPSTREAM_SECRET = "Bearer upstream-credential-from-settings"
FORECAST = {
    "name": "forecast",
    "description": "Weather forecast for a city: temperature, rain and wind for the next days.",
    "inputSchema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, keys: Keys, upstream: FakeUpstream) -> Iterator[str]:
    headers = {"weather": {"Authorization": UPSTREAM_SECRET}}
    with (
        with_domains(SAMPLE_DOMAIN),
        serve_isa(settings, db_url, upstream_headers=headers, breaker_cooldown_seconds=1) as url,
    ):
        dead = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
        servers = [
            {"name": "weather", "description": "Weather service", "url": upstream.url,
             "tools": [FORECAST, {"name": "explode", "description": "Always fails on purpose."}]},
            {"name": "offline", "description": "A server imported without a URL",
             "tools": [{"name": "lookup_stock_price", "description": "Stock price of a ticker symbol."}]},
            {"name": "flaky", "description": "A server that is down", "url": dead,
             "tools": [{"name": "translate_text", "description": "Translate text into another language."}]},
        ]  # fmt: skip
        imported = httpx.post(
            url + "/catalog/import", json=servers, headers={"Authorization": f"Bearer {keys.admin}"}, timeout=120
        )
        assert imported.status_code == 201, imported.text
        yield url


async def _discover(url: str, key: str, request: str, limit: int = 5) -> list[dict[str, Any]]:
    async with mcp_client(url, key) as client:
        result = await client.call_tool("discover_tools", {"request": request, "limit": limit})
    assert result.structured_content is not None, result
    return result.structured_content["data"]["tools"]  # type: ignore[no-any-return]


async def _called_name(url: str, key: str, request: str, server: str) -> str:
    """The call name of the first discovered tool of `server`, polling (bounded) until the catalog has it."""
    with anyio.fail_after(60):
        while True:
            tools = await _discover(url, key, request)
            name = next((t["name"] for t in tools if t["server"] == server), None)
            if name is not None:
                return name
            await anyio.sleep(0.3)


async def test_our_own_tools_are_synced_into_the_catalog_and_discover_tools_returns_their_schemas(
    node: str, keys: Keys
) -> None:
    name = await _called_name(node, keys.alice, "what time is it right now in Tokyo", "isa")
    assert name == "get_current_time"
    tools = await _discover(node, keys.alice, "what time is it right now in Tokyo")
    hit = next(t for t in tools if t["name"] == "get_current_time")
    assert hit["input_schema"]["properties"]["timezone"]["type"] == "string"
    assert hit["score"] > 0 and hit["description"]
    admin_only = await _discover(node, keys.alice, "read the audit log of tool calls as an admin", 20)
    assert all(not t["name"].startswith("admin_") for t in admin_only)


async def test_an_imported_tool_is_forwarded_to_its_server_and_its_output_tagged_untrusted(
    node: str, keys: Keys, upstream: FakeUpstream
) -> None:
    name = await _called_name(node, keys.alice, "weather forecast for a city", "weather")
    async with mcp_client(node, keys.alice) as client:
        result = await client.call_tool(name, {"city": "Lyon", "days": 2})
    assert not result.is_error, result
    body = result.structured_content
    assert body is not None and body["status"] == "success" and body["untrusted"] is True
    assert body["data"]["city"] == "Lyon" and body["data"]["days"] == 2
    assert upstream.calls[-1] == {"city": "Lyon", "days": 2}
    sent = [h.get("authorization") for h in upstream.headers]
    assert UPSTREAM_SECRET in sent and not any(keys.alice in str(h) for h in upstream.headers)


async def test_an_imported_tool_without_a_url_fails_with_a_clear_error(node: str, keys: Keys) -> None:
    name = await _called_name(node, keys.alice, "stock price of a ticker symbol", "offline")
    async with mcp_client(node, keys.alice) as client:
        result = await client.call_tool(name, {"ticker": "ACME"})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["data"]["code"] == "no_upstream_url"
    assert "offline" in result.structured_content["error"]


async def test_a_failing_upstream_opens_the_breaker_and_later_calls_fail_fast_with_retry_after(
    node: str, keys: Keys
) -> None:
    name = await _called_name(node, keys.alice, "translate text into another language", "flaky")
    async with mcp_client(node, keys.alice) as client:
        failures = [await client.call_tool(name, {"text": "hello"}) for _ in range(5)]
        fast = await client.call_tool(name, {"text": "hello"})
    assert all(
        f.structured_content and f.structured_content["data"]["code"] == "upstream_unavailable" for f in failures
    )
    assert fast.is_error and fast.structured_content is not None
    assert fast.structured_content["data"]["code"] == "upstream_circuit_open"
    assert fast.structured_content["data"]["retry_after"] >= 1


async def test_an_upstream_tool_error_is_an_error_result_still_tagged_untrusted(node: str, keys: Keys) -> None:
    name = await _called_name(node, keys.alice, "always fails on purpose", "weather")
    async with mcp_client(node, keys.alice) as client:
        result = await client.call_tool(name, {})
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["status"] == "error" and result.structured_content["untrusted"] is True


async def test_connected_clients_get_tools_list_changed_when_the_catalog_changes(node: str, keys: Keys) -> None:
    seen = anyio.Event()

    async def on_message(message: object) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            seen.set()

    async with mcp_client(node, keys.alice, message_handler=on_message) as client:
        await client.list_tools()  # the session is live on this node
        later = [{"name": "late_server", "tools": [{"name": "late_tool", "description": "Added while connected."}]}]
        async with httpx.AsyncClient(timeout=120) as http:
            imported = await http.post(
                node + "/catalog/import", json=later, headers={"Authorization": f"Bearer {keys.admin}"}
            )
        assert imported.status_code == 201
        with anyio.fail_after(20):
            await seen.wait()


async def test_search_then_call_lists_a_small_set_and_call_tool_runs_any_tool(
    settings: Settings, db_url: str, keys: Keys
) -> None:
    with with_domains(SAMPLE_DOMAIN), serve_isa(settings, db_url, search_then_call=True) as url:
        async with mcp_client(url, keys.bob) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            via_meta = await client.call_tool("call_tool", {"name": "whoami", "arguments": {}})
            direct = await client.call_tool("whoami", {})
            recursive = await client.call_tool("call_tool", {"name": "call_tool", "arguments": {}})
    assert listed == {"get_current_time", "format_json", "ask_human", "request_authorization", "discover_tools",
                      "call_tool", "select_tools", "deselect_tools"}  # fmt: skip
    assert via_meta.structured_content is not None and via_meta.structured_content["data"]["user_id"] == "bob"
    assert direct.structured_content is not None and direct.structured_content["action"] == "whoami"
    assert recursive.is_error

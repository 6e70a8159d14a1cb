"""Progressive disclosure with the SDK client over streamable HTTP: select_tools adds tools to this session's
tools/list (announced with notifications/tools/list_changed), deselect_tools takes them away, and a selection
belongs to one user's session."""

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
    mcp_client,
    open_session,
    raw_headers,
    rpc,
    serve_isa,
    sse_json,
    with_domains,
)
from tests.support.procs import wait_for
from tests.support.users import sql

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, keys: Keys) -> Iterator[str]:
    """Search-then-call: a fresh session sees the meta-tools and the default set only."""
    with (
        with_domains(SAMPLE_DOMAIN),
        serve_isa(settings, db_url, search_then_call=True, default_tools=["format_json"]) as url,
    ):
        wait_for(lambda: httpx.get(url + "/health/ready", timeout=10).status_code == 200, timeout=120)
        yield url


def post(url: str, body: object, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url + "/mcp", json=body, headers=headers, timeout=30)


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    assert result.structured_content is not None
    out: dict[str, Any] = result.structured_content["data"]
    return out


async def test_select_announces_list_changed_then_lists_and_calls_the_tool_and_deselect_removes_it(
    node: str, keys: Keys
) -> None:
    changed = 0
    seen = anyio.Event()

    async def on_message(message: object) -> None:
        nonlocal changed
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed += 1
            seen.set()

    async with mcp_client(node, keys.alice, message_handler=on_message) as client:
        before = {t.name for t in (await client.list_tools()).tools}
        assert "get_current_time" not in before and {"select_tools", "deselect_tools", "format_json"} <= before
        out = data(await client.call_tool("select_tools", {"names": ["get_current_time"]}))
        assert out["added"] == ["get_current_time"] and out["refused"] == []
        with anyio.fail_after(20):
            await seen.wait()
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert listed["get_current_time"].input_schema["properties"]["timezone"]["type"] == "string"
        called = data(await client.call_tool("get_current_time", {"timezone": "UTC"}))
        assert called["timezone"] == "UTC"
        seen = anyio.Event()
        assert data(await client.call_tool("deselect_tools", {}))["removed"] == 1  # no names: reset
        with anyio.fail_after(20):
            await seen.wait()
        assert "get_current_time" not in {t.name for t in (await client.list_tools()).tools}
    assert changed == 2


async def test_an_admin_only_or_unknown_tool_is_refused_with_the_reason_and_never_listed(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.alice) as client:
        out = data(await client.call_tool("select_tools", {"names": ["admin_get_metrics", "no_such_tool"]}))
        assert out["added"] == []
        reasons = {r["name"]: r["reason"] for r in out["refused"]}
        assert "'admin' scope" in reasons["admin_get_metrics"] and "no tool named" in reasons["no_such_tool"]
        assert "admin_get_metrics" not in {t.name for t in (await client.list_tools()).tools}
    async with mcp_client(node, keys.admin) as client:
        out = data(await client.call_tool("select_tools", {"names": ["admin_get_metrics"]}))
        assert out["added"] == ["admin_get_metrics"]
        assert "admin_get_metrics" in {t.name for t in (await client.list_tools()).tools}


async def test_discover_tools_light_mode_has_no_schemas_and_can_select_its_results(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.bob) as client:
        found = data(
            await client.call_tool(
                "discover_tools", {"request": "what time is it in Tokyo", "light": True, "select": True}
            )
        )
        first = found["tools"][0]
        assert set(first) == {"name", "server", "description", "security_level"}
        assert "get_current_time" in found["selection"]["selected"]
        assert "get_current_time" in {t.name for t in (await client.list_tools()).tools}


async def test_a_selection_belongs_to_its_user_and_session_and_goes_when_the_session_ends(
    node: str, keys: Keys, db_url: str
) -> None:
    session = open_session(node, keys.alice)
    call = rpc("tools/call", {"name": "select_tools", "arguments": {"names": ["get_current_time"]}}, id_=2)
    assert post(node, call, raw_headers(keys.alice, session)).status_code == 200
    listing = rpc("tools/list", {}, id_=3)
    # Another user presenting the session id gets 404, as for any other request on it.
    assert post(node, listing, raw_headers(keys.bob, session)).status_code == 404
    # The same user with another key (a reconnect) still has the selection.
    again = post(node, listing, raw_headers(keys.alice_second, session))
    assert "get_current_time" in {t["name"] for t in sse_json(again.text)[0]["result"]["tools"]}
    rows = "SELECT count(*) AS n FROM mcp_session_tools WHERE session_id = %s"
    assert sql(db_url, rows, session)[0][0] == 1
    ended = httpx.delete(node + "/mcp", headers=raw_headers(keys.alice, session), timeout=10)
    assert ended.status_code in (200, 204)
    # The session's teardown (and with it the selection's rows) may finish just after the DELETE answered.
    wait_for(lambda: sql(db_url, rows, session)[0][0] == 0, timeout=10)

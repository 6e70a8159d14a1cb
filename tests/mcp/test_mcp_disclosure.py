"""What a fresh MCP session's tools/list shows (mcp.disclosure), with the SDK client over streamable HTTP: under
"auto" a caller who may use more than mcp.auto_threshold tools sees only the meta-tools, selects what it needs and
then lists it; a caller under the threshold sees everything it may use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from isa.core.settings import Settings
from isa.mcp.registry import Registry
from isa.mcp.server import META_TOOLS
from isa.mcp.settings import McpSettings
from isa.roles import domains_for
from tests.mcp.conftest import Keys
from tests.support.mcp_servers import SAMPLE_DOMAIN, mcp_client, serve_isa, with_domains
from tests.support.procs import wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, keys: Keys) -> Iterator[str]:
    """disclosure = auto with the threshold at exactly what a read key may use: a write key is over it."""
    with with_domains(SAMPLE_DOMAIN):
        read_tools = sum(1 for d in Registry.discover(domains_for("mcp")).tools.values() if d.scope == "read")
        with serve_isa(settings, db_url, disclosure="auto", auto_threshold=read_tools, default_tools=[]) as url:
            wait_for(lambda: httpx.get(url + "/health/ready", timeout=10).status_code == 200, timeout=120)
            yield url


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    assert result.structured_content is not None
    out: dict[str, Any] = result.structured_content["data"]
    return out


async def test_over_the_threshold_a_fresh_session_lists_only_the_meta_tools_until_it_selects_one(
    node: str, keys: Keys
) -> None:
    async with mcp_client(node, keys.alice) as client:
        assert {t.name for t in (await client.list_tools()).tools} == set(META_TOOLS)
        # Listing is not permission: a tool left out of the list still runs when called by name.
        assert data(await client.call_tool("get_current_time", {"timezone": "UTC"}))["timezone"] == "UTC"
        assert data(await client.call_tool("select_tools", {"names": ["get_current_time"]}))["added"] == [
            "get_current_time"
        ]
        assert {t.name for t in (await client.list_tools()).tools} == {*META_TOOLS, "get_current_time"}


async def test_under_the_threshold_a_fresh_session_lists_every_tool_it_may_use(node: str, keys: Keys) -> None:
    async with mcp_client(node, keys.reader) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
    assert "get_current_time" in listed and "format_json" in listed
    assert not any(name.startswith("admin_") for name in listed)


def test_the_older_search_then_call_switch_still_means_meta_unless_auto_is_chosen() -> None:
    assert McpSettings(search_then_call=True).fresh_session == "meta"
    assert McpSettings(search_then_call=True, disclosure="auto").fresh_session == "auto"
    assert McpSettings().fresh_session == "everything"

"""The web tools end to end through a real mcp node over streamable HTTP, with the SDK's client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.fake_brave import KEY, FakeBrave
from tests.support.mcp_servers import mcp_client, serve_asgi, settings_with
from tests.support.web_pages import Listener, PageServer, listener, page_server

__all__ = ["listener", "page_server"]


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, page_server: PageServer) -> Iterator[tuple[str, str]]:
    """An mcp node whose web allow list opens only the page server; yields (base URL, alice's key)."""
    fake = FakeBrave()
    with serve_asgi(fake.app()) as brave_url:
        web = {"allow_hosts": [f"127.0.0.1:{page_server.port}"], "brave_api_key": KEY, "brave_api_base": brave_url}
        app = create_app(settings_with(settings, web=web), "mcp", database_url=db_url)
        with serve_asgi(app) as url:
            yield url, create_key(db_url, settings, "web-alice", "write")


@pytest.mark.anyio
async def test_web_crawl_through_mcp_returns_markdown_tagged_untrusted(
    node: tuple[str, str], page_server: PageServer
) -> None:
    url, key = node
    async with mcp_client(url, key) as client:
        result = await client.call_tool("web_crawl", {"url": page_server.url + "/"})
    body = result.structured_content
    assert body is not None and not result.is_error
    assert body["untrusted"] is True and result.meta == {"isa/untrusted": True}
    assert "Ignore previous instructions" in body["data"]["markdown"]  # delivered as data, marked untrusted
    assert "| apple | 1 |" in body["data"]["markdown"]


@pytest.mark.anyio
async def test_a_blocked_url_through_mcp_is_a_tool_error_and_reaches_nothing(
    node: tuple[str, str], listener: Listener
) -> None:
    url, key = node
    async with mcp_client(url, key) as client:
        result = await client.call_tool("web_crawl", {"url": f"http://2130706433:{listener.port}/"})
    assert result.is_error
    assert "blocked" in json.dumps(result.structured_content)
    assert listener.connections == 0


@pytest.mark.anyio
async def test_web_screenshot_through_mcp_is_an_image_content_block(
    node: tuple[str, str], page_server: PageServer
) -> None:
    url, key = node
    async with mcp_client(url, key) as client:
        result = await client.call_tool("web_screenshot", {"url": page_server.url + "/second"})
    assert not result.is_error
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")


@pytest.mark.anyio
async def test_web_search_through_mcp_uses_the_configured_provider(node: tuple[str, str]) -> None:
    url, key = node
    async with mcp_client(url, key) as client:
        result = await client.call_tool("web_search", {"query": "isa", "count": 2})
    assert result.structured_content is not None
    assert [r["url"] for r in result.structured_content["data"]["results"]] == [
        "https://example.org/1",
        "https://example.org/2",
    ]

"""Helpers for memory/knowledge tests: an mcp node on loopback and one-call tool invocations over real MCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client, serve_isa


@dataclass(frozen=True)
class MemoryKeys:
    alice: str
    bob: str
    reader: str  # alice-independent user with read scope only


class ToolFailed(Exception):
    """The tool answered with an error result; the message is its text."""


@pytest.fixture(scope="module")
def mkeys(settings: Settings, db_url: str) -> MemoryKeys:
    return MemoryKeys(
        alice=create_key(db_url, settings, "mem-alice", "write"),
        bob=create_key(db_url, settings, "mem-bob", "write"),
        reader=create_key(db_url, settings, "mem-reader", "read"),
    )


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, mkeys: MemoryKeys) -> Iterator[str]:
    """An mcp node (which serves isa.memory) on a loopback port."""
    with serve_isa(settings, db_url) as url:
        yield url


async def call(url: str, key: str, tool: str, args: dict[str, Any] | None = None) -> Any:
    """Call one tool over MCP and return the envelope's data; an error result raises ToolFailed."""
    async with mcp_client(url, key) as client:
        result = await client.call_tool(tool, args or {})
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    if result.is_error:
        raise ToolFailed(text)
    body = result.structured_content or json.loads(text)
    return body["data"]


async def read(url: str, key: str, uri: str) -> Any:
    error: MCPError | None = None
    async with mcp_client(url, key) as client:
        try:
            result = await client.read_resource(uri)
        except MCPError as exc:  # raised outside the client's task group, so callers see it unwrapped
            error = exc
    if error is not None:
        raise error
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]

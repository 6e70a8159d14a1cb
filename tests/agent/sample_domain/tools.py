"""Tools the agent tests call: one that never finishes in time, one that counts calls, ones that draw."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp_types import CallToolResult, ImageContent, TextContent

from isa.files.multipart import FilePart
from isa.files.service import FilesService
from isa.mcp.context import current_call
from isa.mcp.registry import Capabilities

capabilities = Capabilities("tests.agent.sample_domain")


@capabilities.tool(category="test", keywords=["slow", "hang", "sleep", "wait"])
async def slow_lookup(seconds: float = 30.0) -> dict[str, Any]:
    """Look something up very slowly (sleeps the given number of seconds first)."""
    await anyio.sleep(seconds)
    return {"slept": seconds}


@capabilities.tool(category="test", keywords=["weather", "forecast", "temperature", "city"])
async def weather_forecast(city: str) -> dict[str, Any]:
    """Tomorrow's weather forecast for a city (a fixed, fake forecast for tests)."""
    return {"city": city, "forecast": "sunny", "high_c": 21, "asked_by": current_call().principal.user_id}


# An 8x8 PNG (red left, blue right): what a chart or screenshot tool returns as MCP image content.
TEST_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM4IScHR0jMEwxDSwIAZj9BAfENE6kAAAAASUVORK5CYII="


@capabilities.tool(category="test", keywords=["picture", "drawing", "image", "sketch"])
async def draw_test_picture(subject: str) -> CallToolResult:
    """Draw a small test picture of a subject (returns a PNG image, for tests)."""
    return CallToolResult(
        content=[
            TextContent(type="text", text=json.dumps({"status": "success", "data": {"subject": subject}})),
            ImageContent(type="image", data=TEST_PNG, mime_type="image/png"),
        ]
    )


@capabilities.tool(category="test", keywords=["chart", "plot", "graph", "saved"])
async def chart_test_picture(title: str) -> dict[str, Any]:
    """Draw a small test chart, saved to your files (returns its file id only, as an analytics chart does)."""
    call = current_call()
    png = base64.b64decode(TEST_PNG)

    async def chunks() -> AsyncIterator[bytes]:
        yield png

    files = call.service("files", FilesService)
    row = await files.upload(call.principal.user_id, FilePart("chart.png", "image/png", chunks()), len(png))
    return {"status": "success", "data": {"title": title, "chart": {"file_id": row.id, "filename": row.filename}}}

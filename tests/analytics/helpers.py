"""Helpers of the analytics tests: uploads through the files API and tool calls over a real MCP client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.mcp_servers import mcp_client


@dataclass
class Outcome:
    """One tool call as the client saw it: the envelope, the error code (if any) and the image blocks."""

    body: dict[str, Any]
    is_error: bool
    images: list[Any] = field(default_factory=list)
    text: str = ""

    @property
    def data(self) -> Any:
        return self.body["data"]

    @property
    def code(self) -> str | None:
        return self.body["data"].get("code") if self.is_error else None


async def call(url: str, key: str, tool: str, args: dict[str, Any] | None = None) -> Outcome:
    async with mcp_client(url, key) as client:
        result = await client.call_tool(tool, args or {})
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    images = [c for c in result.content if getattr(c, "type", "") == "image"]
    body = result.structured_content or json.loads(text)
    return Outcome(body, bool(result.is_error), images, text)


async def ok(url: str, key: str, tool: str, args: dict[str, Any] | None = None) -> Any:
    out = await call(url, key, tool, args)
    assert not out.is_error, out.text
    return out.data


def upload(node: str, user: str, key: str, name: str, data: bytes, ctype: str) -> str:
    """Upload a file to the user's storage through the files API; its id."""
    response = httpx.post(
        f"{node}/api/v1/users/{user}/files",
        files={"file": (name, data, ctype)},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["file_id"])


def sales_csv(rows: int = 500) -> bytes:
    """Orders with a region, a net revenue in EUR, a date and a quantity; revenue sums are easy to check."""
    regions = ["north", "south", "east", "west"]
    lines = ["Order ID,Region,Net Revenue (EUR),Order Date,Quantity"]
    for i in range(rows):
        lines.append(
            f"{i + 1},{regions[i % 4]},{(i % 50) * 2.5:.2f},2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},{i % 7 + 1}"
        )
    return ("\n".join(lines) + "\n").encode()


def revenue_by_region(rows: int = 500) -> dict[str, float]:
    regions = ["north", "south", "east", "west"]
    totals: dict[str, float] = dict.fromkeys(regions, 0.0)
    for i in range(rows):
        totals[regions[i % 4]] += (i % 50) * 2.5
    return totals

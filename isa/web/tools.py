"""MCP tools: web_search, web_crawl, web_screenshot, web_automation. Their output is untrusted page content."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ImageContent
from pydantic import Field

from isa.mcp.context import current_call
from isa.mcp.envelope import envelope, to_result
from isa.mcp.registry import Capabilities, SecurityLevel
from isa.web.automation import WebAutomation
from isa.web.service import WebError, WebService

capabilities = Capabilities("isa.web")


def _service() -> WebService:
    return current_call().service("web", WebService)


@capabilities.tool(category="web", keywords=["search", "web", "internet", "brave", "find"], untrusted_output=True)
async def web_search(
    query: Annotated[str, Field(min_length=1, max_length=400)], count: Annotated[int, Field(ge=1, le=20)] = 10
) -> dict[str, Any]:
    """Search the web; returns results with title, url and snippet."""
    try:
        return await _service().search(query, count)
    except WebError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from None


@capabilities.tool(
    category="web",
    keywords=["crawl", "scrape", "fetch", "web page", "read", "compare", "markdown"],
    untrusted_output=True,
    rate_limit_per_minute=30,
)
async def web_crawl(
    url: Annotated[str, Field(min_length=1, max_length=8000)], analysis_request: str = ""
) -> dict[str, Any]:
    """Read a web page (or a JSON list of URLs to compare) as Markdown with its links and tables."""
    call = current_call()
    try:
        return await _service().crawl(call.principal.user_id, url, analysis_request, call.principal)
    except WebError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from None


@capabilities.tool(
    category="web",
    keywords=["screenshot", "web page", "image", "capture"],
    untrusted_output=True,
    rate_limit_per_minute=20,
)
async def web_screenshot(url: Annotated[str, Field(min_length=1, max_length=2000)]) -> CallToolResult:
    """Take a PNG screenshot of a web page, rendered in an isolated browser context."""
    call = current_call()
    try:
        final_url, png = await _service().screenshot(call.principal.user_id, url)
    except WebError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from None
    data = {"url": url, "final_url": final_url, "bytes": len(png), "mime_type": "image/png"}
    result = to_result(envelope("success", "web_screenshot", data, untrusted=True), untrusted=True)
    image = ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")
    return result.model_copy(update={"content": [*result.content, image]})


def _automation() -> WebAutomation:
    service = _service()
    return WebAutomation(service, service.analyst.client if service.analyst else None)


@capabilities.tool(
    category="web",
    keywords=["automation", "browser", "click", "fill form", "submit", "navigate", "interact"],
    untrusted_output=True,
    # It acts on the web for the user (submits forms, posts, signs up), steered by a model that reads untrusted
    # pages: a human approves each exact (url, task) first, as for every other irreversible outside effect.
    security=SecurityLevel.HIGH,
    scope="write",
    cost_credits=2,  # the browser context held for up to the deadline; the model node bills its own calls
    rate_limit_per_minute=10,
)
async def web_automation(
    url: Annotated[str, Field(min_length=1, max_length=2000)],
    task: Annotated[str, Field(min_length=1, max_length=4000)],
) -> CallToolResult:
    """Carry out a task on a web page (click, type, select, scroll, wait), planned step by step by the model."""
    call = current_call()
    try:
        run = await _automation().run(call.principal, url, task)
    except WebError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from None
    # Image blocks: the final PNG (when taken), then the JPEG thumbnails a step's "thumbnail" index points into.
    data = {**run.data, "final_screenshot": bool(run.screenshot), "thumbnails": len(run.thumbnails)}
    result = to_result(envelope("success", "web_automation", data, untrusted=True), untrusted=True)
    images = [ImageContent(type="image", data=base64.b64encode(run.screenshot).decode("ascii"), mime_type="image/png")]
    images = images if run.screenshot else []
    images += [
        ImageContent(type="image", data=base64.b64encode(t).decode("ascii"), mime_type="image/jpeg")
        for t in run.thumbnails
    ]
    return result.model_copy(update={"content": [*result.content, *images]})

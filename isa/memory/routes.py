"""HTTP for memory (mcp role): searching the caller's memories without an MCP session.

The agent recalls through this route before each turn, next to `/discover`: one request instead of an MCP
handshake plus a tool call on the path to the first token. Same service, filters and scoping as the
`search_memories` tool; the owner is the principal, never an argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from isa.auth import require_principal
from isa.auth.principal import Principal
from isa.core.http import json_body, requires
from isa.memory.service import MemoryService
from isa.memory.store import search_filters


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(10, ge=1, le=100)
    memory_types: list[Literal["factual", "episodic", "semantic", "procedural", "working"]] | None = None
    subject: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=200)
    since: datetime | None = None
    until: datetime | None = None
    min_importance: float = Field(0.0, ge=0, le=1)
    min_similarity: float = Field(-1.0, ge=-1, le=1)


@requires(require_principal, "read")
async def search(request: Request, principal: Principal) -> JSONResponse:
    """POST /api/v1/memories/search -> {query, results, count}: the caller's memories, best first."""
    body = await json_body(request, SearchBody)
    filters = search_filters(
        body.memory_types, body.subject, body.category, body.since, body.until, body.min_importance
    )
    service = request.app.state.isa.get("memory", MemoryService)
    results = (
        await service.search(principal.user_id, body.query, filters, body.top_k, body.min_similarity)
        if filters.types
        else []
    )
    return JSONResponse({"query": body.query, "results": results, "count": len(results)})


ROUTES = [Route("/api/v1/memories/search", search, methods=["POST"])]

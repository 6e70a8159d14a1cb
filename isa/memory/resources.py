"""The memory:// MCP resources: the caller comes from the request's token; there is no user in the URI."""

from __future__ import annotations

import json
import uuid
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from isa.core.builder import AppState
from isa.mcp.context import request_principal
from isa.memory.caps import capabilities
from isa.memory.service import MemoryService, NotFound
from isa.memory.store import MEMORY_TYPES, Filters
from isa.users import sessions


def _resource_ctx(ctx: Context) -> tuple[str, MemoryService]:
    principal = request_principal()
    if principal is None:
        raise ResourceError("authentication required")
    server: Any = ctx.mcp_server
    state: AppState = server.runner.state
    return principal.user_id, state.get("memory", MemoryService)


@capabilities.resource(
    "memory://statistics/{memory_type}", name="memory_statistics", category="memory", keywords=["memory", "statistics"]
)
async def memory_statistics_resource(memory_type: str, ctx: Context) -> str:
    """Counts of your memories: memory_type "all" or one type."""
    if memory_type != "all" and memory_type not in MEMORY_TYPES:
        raise ResourceError(f"unknown memory type {memory_type!r}")
    user_id, service = _resource_ctx(ctx)
    stats = await service.statistics(user_id)
    if memory_type != "all":
        stats = {"memory_type": memory_type, "count": stats["counts"][memory_type]}
    return json.dumps(stats, default=str)


@capabilities.resource("memory://sessions/{limit}", name="memory_sessions", category="memory", keywords=["sessions"])
async def memory_sessions_resource(limit: str, ctx: Context) -> str:
    """Your newest sessions (at most `limit`, up to 100)."""
    user_id, service = _resource_ctx(ctx)
    n = min(max(int(limit) if limit.isdigit() else 20, 1), 100)
    async with service.db.connection() as conn:
        rows = await sessions.recent_sessions(conn, user_id, n)
    return json.dumps(rows, default=str)


@capabilities.resource(
    "memory://session/{session_id}", name="memory_session", category="memory", keywords=["session", "context"]
)
async def memory_session_resource(session_id: str, ctx: Context) -> str:
    """One of your sessions with its recent messages and summary."""
    user_id, service = _resource_ctx(ctx)
    try:
        found = await service.session_context(user_id, str(uuid.UUID(session_id)), True, 20)
    except (NotFound, ValueError):
        raise ResourceError(f"no session {session_id}") from None
    return json.dumps(found, default=str)


@capabilities.resource(
    "memory://type/{memory_type}", name="memory_by_type", category="memory", keywords=["memories", "type"]
)
async def memory_type_resource(memory_type: str, ctx: Context) -> str:
    """Your newest memories of one type (factual, episodic, semantic, procedural, working)."""
    if memory_type not in MEMORY_TYPES:
        raise ResourceError(f"unknown memory type {memory_type!r}")
    user_id, service = _resource_ctx(ctx)
    return json.dumps(await service.list_type(user_id, memory_type, "TRUE", {}, 50), default=str)


@capabilities.resource(
    "memory://search/{query}", name="memory_search", category="memory", keywords=["memories", "search"]
)
async def memory_search_resource(query: str, ctx: Context) -> str:
    """Your memories most related to a query (top 10)."""
    user_id, service = _resource_ctx(ctx)
    return json.dumps(await service.search(user_id, query, Filters(), 10), default=str)

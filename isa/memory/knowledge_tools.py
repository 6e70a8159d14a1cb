"""The 9 knowledge (RAG) tools and the memory:// resources, all for the calling user only."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from isa.core.builder import AppState
from isa.files.service import FilesService
from isa.mcp.context import current_call, request_principal
from isa.mcp.registry import SecurityLevel
from isa.memory.caps import capabilities
from isa.memory.documents import UnreadableFile, read_text
from isa.memory.knowledge import KnowledgeService
from isa.memory.service import MemoryService, NotFound
from isa.memory.store import MEMORY_TYPES, Filters
from isa.users import sessions

Text = Annotated[str, Field(min_length=1, max_length=200_000)]
Question = Annotated[str, Field(min_length=1, max_length=2000)]
TopK = Annotated[int, Field(ge=1, le=50)]
WRITE: dict[str, Any] = {"category": "knowledge", "scope": "write", "security": SecurityLevel.MEDIUM}


def _service() -> KnowledgeService:
    call = current_call()
    return call.service("knowledge", KnowledgeService)


def _ctx() -> tuple[str, KnowledgeService]:
    return current_call().principal.user_id, _service()


@capabilities.tool(**WRITE, keywords=["knowledge", "store", "save", "note", "rag"])
async def store_knowledge(text: Text, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save a piece of text to your knowledge base for later search and answers."""
    user_id, service = _ctx()
    return await service.store_text(user_id, text, metadata or {})


@capabilities.tool(**WRITE, keywords=["document", "upload", "ingest", "chunk", "rag", "knowledge", "file"])
async def add_document(
    document: Annotated[str, Field(max_length=200_000)] = "",
    file_id: str | None = None,
    chunk_size: Annotated[int, Field(ge=100, le=4000)] = 400,
    overlap: Annotated[int, Field(ge=0, le=1000)] = 80,
    metadata: dict[str, Any] | None = None,
    source_name: str | None = None,
) -> dict[str, Any]:
    """Add a document to your knowledge base in overlapping chunks: text, or file_id of your txt/md/html/pdf file."""
    call = current_call()
    user_id, service = call.principal.user_id, _service()
    if bool(document.strip()) == bool(file_id):
        raise ToolError("give either document (text) or file_id (a file in your storage), not both")
    if file_id:
        try:
            files = call.service("files", FilesService)
            document, filename = await read_text(files, user_id, file_id, service.limits)
        except (UnreadableFile, LookupError) as exc:
            raise ToolError(str(exc) if isinstance(exc, UnreadableFile) else "file storage is not available") from None
        source_name = source_name or filename
    try:
        return await service.add_document(user_id, document, chunk_size, overlap, metadata or {}, source_name)
    except ValueError as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="knowledge", keywords=["search", "knowledge", "documents", "find", "rag"])
async def search_knowledge(
    query: Question, top_k: TopK = 5, mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
) -> dict[str, Any]:
    """Search your knowledge base (hybrid: meaning and words); returns the best chunks with scores."""
    results, ranking = await _service().ranked(current_call().principal, query, top_k, mode)
    return {"query": query, "results": results, "count": len(results), "mode": mode, "ranking": ranking}


@capabilities.tool(category="knowledge", keywords=["context", "retrieve", "rag", "sources"])
async def retrieve_context(query: Question, top_k: TopK = 5) -> dict[str, Any]:
    """The best-matching chunks of your knowledge base as one numbered context text, with their sources."""
    return await _service().retrieve_context(current_call().principal, query, top_k)


@capabilities.tool(category="knowledge", keywords=["answer", "question", "rag", "citations", "documents"])
async def generate_rag_response(
    query: Question, context_limit: Annotated[int, Field(ge=1, le=20)] = 3
) -> dict[str, Any]:
    """Answer a question from your knowledge base with numbered citations to the chunks used."""
    principal = current_call().principal
    return await _service().answer(principal.user_id, query, context_limit, principal)


@capabilities.tool(category="knowledge", keywords=["list", "knowledge", "documents", "items"])
async def list_user_knowledge(
    limit: Annotated[int, Field(ge=1, le=200)] = 50, offset: Annotated[int, Field(ge=0)] = 0
) -> dict[str, Any]:
    """Your knowledge items (stored texts and document chunks), newest first."""
    user_id, service = _ctx()
    return await service.list_items(user_id, limit, offset)


@capabilities.tool(category="knowledge", keywords=["get", "knowledge", "item", "chunk"])
async def get_knowledge_item(item_id: str) -> dict[str, Any]:
    """One of your knowledge items by id."""
    user_id, service = _ctx()
    try:
        return await service.get_item(user_id, item_id)
    except NotFound as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(**{**WRITE, "keywords": ["delete", "remove", "knowledge", "document"]})
async def delete_knowledge_item(item_id: str, whole_document: bool = True) -> dict[str, Any]:
    """Delete one of your knowledge items (by default with every other chunk of its document)."""
    user_id, service = _ctx()
    try:
        return await service.delete_item(user_id, item_id, whole_document)
    except NotFound as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="knowledge", keywords=["status", "rag", "health", "knowledge"])
async def get_rag_service_status() -> dict[str, Any]:
    """What the knowledge service can do now and how much you have stored."""
    call = current_call()
    return await _service().status(call.principal.user_id, bool(call.state.settings.services.model_url))


# ---- memory:// resources: the caller comes from the request's token; there is no user in the URI.


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

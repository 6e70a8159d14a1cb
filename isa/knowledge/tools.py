"""MCP capabilities of the knowledge domain: the 9 knowledge (RAG) tools, all for the calling user only."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from isa.files.service import FilesService
from isa.knowledge.documents import UnreadableFile, read_text
from isa.knowledge.service import KnowledgeService
from isa.mcp.context import current_call
from isa.mcp.registry import Capabilities, SecurityLevel
from isa.memory.service import NotFound

Text = Annotated[str, Field(min_length=1, max_length=200_000)]
Question = Annotated[str, Field(min_length=1, max_length=2000)]
TopK = Annotated[int, Field(ge=1, le=50)]
capabilities = Capabilities("isa.knowledge")

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

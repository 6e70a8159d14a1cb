"""The 13 memory tools (the original's names) and `delete_my_memories`; the owner is always the caller."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from isa.auth.principal import Principal
from isa.core.logging import get_logger
from isa.mcp.context import current_call
from isa.mcp.registry import SecurityLevel
from isa.memory.caps import capabilities
from isa.memory.service import MemoryService, NotFound
from isa.memory.store import search_filters

log = get_logger(__name__)
MemoryType = Literal["factual", "episodic", "semantic", "procedural", "working"]
Importance = Annotated[float, Field(ge=0, le=1)]
Dialog = Annotated[str, Field(min_length=1, max_length=20_000)]
TopK = Annotated[int, Field(ge=1, le=100)]
WRITE: dict[str, Any] = {"category": "memory", "scope": "write", "security": SecurityLevel.MEDIUM}


def _ctx() -> tuple[str, MemoryService]:
    call = current_call()
    return call.principal.user_id, call.service("memory", MemoryService)


def _principal() -> Principal:
    return current_call().principal


def _session_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ToolError(f"no session {value}") from None


@capabilities.tool(**WRITE, keywords=["remember", "fact", "store", "memory", "personal"])
async def store_factual_memory(
    dialog_content: Dialog,
    importance_score: Importance = 0.5,
    keep_notes: bool = True,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Remember facts the user states (e.g. "my sister's name is Lena"); a changed fact updates the old one.

    keep_notes=false stores nothing when no fact is stated (instead of keeping the text as a note). session_id (one
    of your sessions) ties the extraction to it and keeps the session's rolling summary up to date.
    """
    call = current_call()
    service = call.service("memory", MemoryService)
    user_id = call.principal.user_id
    session = None if session_id is None else _session_id(session_id)
    try:
        stored, outcome = await service.store_facts(
            user_id, dialog_content, importance_score, call.principal, keep_notes=keep_notes, session_id=session
        )
    except NotFound as exc:
        raise ToolError(str(exc)) from None
    out: dict[str, Any] = {"stored": stored, "count": len(stored), "extraction": outcome.method}
    if session is not None:
        try:
            out["summary"] = await service.summarise_if_due(user_id, session, call.principal)
        except Exception:  # the facts are stored; a failed summary only waits for the next message
            log.exception("memory_summary_failed")
    return out


@capabilities.tool(**WRITE, keywords=["remember", "episode", "event", "experience", "happened"])
async def store_episodic_memory(
    dialog_content: Dialog, episode_date: datetime | None = None, importance_score: Importance = 0.5
) -> dict[str, Any]:
    """Remember an event the user lived through (what happened, with whom, when)."""
    user_id, service = _ctx()
    return await service.store_episode(user_id, dialog_content, episode_date, importance_score, _principal())


@capabilities.tool(**WRITE, keywords=["remember", "concept", "knowledge", "definition", "semantic"])
async def store_semantic_memory(
    dialog_content: Dialog, concept_category: str | None = None, importance_score: Importance = 0.5
) -> dict[str, Any]:
    """Remember a concept or piece of general knowledge the user holds (name, definition, category)."""
    user_id, service = _ctx()
    return await service.store_concept(user_id, dialog_content, concept_category, importance_score, _principal())


@capabilities.tool(**WRITE, keywords=["remember", "procedure", "how to", "steps", "workflow"])
async def store_procedural_memory(
    dialog_content: Dialog, domain: str | None = None, importance_score: Importance = 0.5
) -> dict[str, Any]:
    """Remember how to do something as ordered steps (numbered lines or first/then/finally)."""
    user_id, service = _ctx()
    return await service.store_procedure(user_id, dialog_content, domain, importance_score, _principal())


@capabilities.tool(**WRITE, keywords=["working memory", "task", "progress", "temporary", "current"])
async def store_working_memory(
    dialog_content: Dialog,
    ttl_seconds: Annotated[int, Field(ge=1, le=30 * 86400)] = 86400,
    context_type: str = "task",
    importance_score: Importance = 0.5,
) -> dict[str, Any]:
    """Keep short-lived task state that expires after ttl_seconds (it never comes back once expired)."""
    user_id, service = _ctx()
    return await service.store_working(user_id, dialog_content, ttl_seconds, context_type, importance_score)


@capabilities.tool(**WRITE, keywords=["session", "message", "conversation", "history", "store"])
async def store_session_message(
    session_id: str,
    message_content: Annotated[str, Field(max_length=100_000)],
    message_type: Literal["chat", "tool_call", "tool_result", "system", "summary", "event"] = "chat",
    role: Literal["user", "assistant", "system"] = "user",
    importance_score: Importance = 0.5,
) -> dict[str, Any]:
    """Append a message to one of your sessions."""
    user_id, service = _ctx()
    try:
        return await service.store_session_message(
            user_id, _session_id(session_id), message_content, message_type, role, importance_score
        )
    except NotFound as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="memory", keywords=["recall", "search", "memories", "remember", "what do you know"])
async def search_memories(
    query: Annotated[str, Field(min_length=1, max_length=2000)],
    memory_types: list[MemoryType] | None = None,
    top_k: TopK = 10,
    subject: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    min_importance: Importance = 0.0,
) -> dict[str, Any]:
    """Find your memories most related to a query across all types, with optional type/subject/category/time filters.

    subject narrows facts and category narrows concepts; the ranking blends similarity, importance and recency.
    """
    user_id, service = _ctx()
    filters = search_filters(memory_types, subject, category, since, until, min_importance)
    results = await service.search(user_id, query, filters, top_k) if filters.types else []
    return {"query": query, "results": results, "count": len(results)}


@capabilities.tool(category="memory", keywords=["facts", "subject", "about", "recall"])
async def search_facts_by_subject(subject: str, limit: TopK = 20) -> dict[str, Any]:
    """Your stored facts about one subject (e.g. "user"), newest first."""
    user_id, service = _ctx()
    rows = await service.list_type(user_id, "factual", "lower(t.subject) = lower(%(s)s)", {"s": subject}, limit)
    return {"subject": subject, "facts": rows, "count": len(rows)}


@capabilities.tool(category="memory", keywords=["facts", "type", "category", "recall"])
async def search_facts_by_type(fact_type: str, limit: TopK = 20) -> dict[str, Any]:
    """Your stored facts of one type (personal_info, preference, location, work, note), newest first."""
    user_id, service = _ctx()
    rows = await service.list_type(user_id, "factual", "t.fact_type = %(f)s", {"f": fact_type}, limit)
    return {"fact_type": fact_type, "facts": rows, "count": len(rows)}


@capabilities.tool(category="memory", keywords=["concepts", "category", "knowledge", "semantic"])
async def search_concepts_by_category(category: str, limit: TopK = 20) -> dict[str, Any]:
    """Your stored concepts in one category, newest first."""
    user_id, service = _ctx()
    rows = await service.list_type(
        user_id, "semantic", "lower(t.concept_category) = lower(%(c)s)", {"c": category}, limit
    )
    return {"category": category, "concepts": rows, "count": len(rows)}


@capabilities.tool(category="memory", keywords=["session", "context", "conversation", "summary", "recent"])
async def get_session_context(
    session_id: str, include_summaries: bool = True, max_recent_messages: Annotated[int, Field(ge=0, le=200)] = 10
) -> dict[str, Any]:
    """One of your sessions: its recent messages and its rolling summary."""
    user_id, service = _ctx()
    try:
        return await service.session_context(user_id, _session_id(session_id), include_summaries, max_recent_messages)
    except NotFound as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="memory", keywords=["working memory", "active", "tasks", "current"])
async def get_active_working_memories(limit: TopK = 20) -> dict[str, Any]:
    """Your working memories that have not expired, newest first."""
    user_id, service = _ctx()
    rows = await service.list_type(user_id, "working", "TRUE", {}, limit)
    return {"working_memories": rows, "count": len(rows)}


@capabilities.tool(category="memory", keywords=["statistics", "memory", "counts", "overview"])
async def get_memory_statistics() -> dict[str, Any]:
    """How many memories of each type you have (expired ones not counted)."""
    user_id, service = _ctx()
    return await service.statistics(user_id)


@capabilities.tool(
    category="memory",
    keywords=["forget", "delete", "erase", "memories", "privacy"],
    security=SecurityLevel.HIGH,
    scope="write",
    rate_limit_per_minute=10,
)
async def delete_my_memories(
    memory_type: Literal["factual", "episodic", "semantic", "procedural", "working", "all"],
) -> dict[str, Any]:
    """Permanently delete your stored memories of one type (or all); needs a human's approval first."""
    user_id, service = _ctx()
    return await service.forget(user_id, None if memory_type == "all" else memory_type)

"""Long-term memory (five typed tables, sessions) and the user knowledge base (RAG); served as MCP tools only."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.core.embeddings import LocalMiniLM
from isa.memory.knowledge import KnowledgeService
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings

__all__ = ["KnowledgeService", "MemoryService", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the memory and knowledge services; the MCP registry finds `isa.memory.tools` by convention."""
    settings = builder.settings.section("memory", MemorySettings)
    memory = MemoryService(builder.state.db, LocalMiniLM(), settings)
    builder.provide("memory", memory)
    builder.provide("knowledge", KnowledgeService(memory))

"""Long-term memory (five typed tables, sessions): MCP tools and resources, and memory search on HTTP."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.core.embeddings import shared_minilm
from isa.llm.client import model_client
from isa.memory.llm_extract import Extractor
from isa.memory.routes import ROUTES
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings

__all__ = ["MemoryService", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the memory service; the MCP registry finds `isa.memory.tools` by convention."""
    settings = builder.settings.section("memory", MemorySettings)
    client = None
    if settings.extraction != "rules":
        client = model_client(builder, settings.extraction_timeout_seconds, user_agent="isa-memory")
    extractor = Extractor(client, settings.extraction, settings.extraction_model)
    memory = MemoryService(builder.state.db, shared_minilm(), settings, extractor)
    builder.provide("memory", memory)
    builder.add_routes(*ROUTES)

"""Long-term memory (five typed tables, sessions) and the knowledge base (RAG): MCP tools, and memory search on HTTP."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.core.embeddings import shared_minilm
from isa.llm.client import model_client
from isa.memory.knowledge import KnowledgeService, KnowledgeSettings
from isa.memory.llm_extract import Extractor
from isa.memory.routes import ROUTES
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings

__all__ = ["KnowledgeService", "MemoryService", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the memory and knowledge services; the MCP registry finds `isa.memory.tools` by convention."""
    settings = builder.settings.section("memory", MemorySettings)
    client = None
    if settings.extraction != "rules":
        client = model_client(builder, settings.extraction_timeout_seconds, user_agent="isa-memory")
    extractor = Extractor(client, settings.extraction, settings.extraction_model)
    memory = MemoryService(builder.state.db, shared_minilm(), settings, extractor)
    builder.provide("memory", memory)
    builder.add_routes(*ROUTES)
    knowledge = builder.settings.section("knowledge", KnowledgeSettings)
    reranker = None
    if knowledge.rerank:
        reranker = model_client(builder, knowledge.rerank_timeout_seconds, user_agent="isa-knowledge")
    answerer = None
    if knowledge.answer_model:
        answerer = model_client(builder, knowledge.answer_timeout_seconds, user_agent="isa-knowledge")
    builder.provide("knowledge", KnowledgeService(memory, knowledge, reranker, answerer))

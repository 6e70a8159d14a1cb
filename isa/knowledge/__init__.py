"""The knowledge base (RAG) over `user_knowledge`: chunk, embed, store, hybrid search, answers; MCP tools only.

Embeddings and the chunking settings come from the memory domain's public `MemoryService` (one embedder per
process), so `isa.memory` registers first (isa/roles.py lists it before this domain).
"""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.knowledge.service import KnowledgeService
from isa.knowledge.settings import KnowledgeSettings
from isa.llm.client import model_client
from isa.memory.service import MemoryService

__all__ = ["KnowledgeService", "KnowledgeSettings", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the knowledge service; the MCP registry finds `isa.knowledge.tools` by convention."""
    memory = builder.state.get("memory", MemoryService)
    knowledge = builder.settings.section("knowledge", KnowledgeSettings)
    reranker = None
    if knowledge.rerank:
        reranker = model_client(builder, knowledge.rerank_timeout_seconds, user_agent="isa-knowledge")
    answerer = None
    if knowledge.answer_model:
        answerer = model_client(builder, knowledge.answer_timeout_seconds, user_agent="isa-knowledge")
    service = KnowledgeService(memory, knowledge, reranker, answerer)
    builder.provide("knowledge", service)
    builder.on_shutdown(service.close)  # background loads of the local index end before the pool closes

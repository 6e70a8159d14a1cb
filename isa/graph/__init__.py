"""A knowledge graph per user (GraphRAG in Postgres + pgvector): MCP tools and the symbolic:// resources."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.core.embeddings import shared_minilm
from isa.graph.service import GraphError, GraphService
from isa.graph.settings import GraphSettings
from isa.graph.sources import Limits
from isa.llm.client import model_client

__all__ = ["GraphError", "GraphService", "GraphSettings", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the graph service; the MCP registry finds `isa.graph.tools` by convention."""
    settings = builder.settings.section("graph", GraphSettings)
    client = model_client(builder.settings, settings.timeout_seconds, user_agent="isa-graph")
    limits = Limits(settings.max_document_chars, settings.max_pdf_bytes, settings.max_pdf_pages)
    builder.provide("graph", GraphService(builder.state.db, shared_minilm(), settings, client, limits))

"""The catalog of tools, prompts and resources (ours and imported) and hybrid AI discovery over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from isa.catalog.adapter import QueryAdapter
from isa.catalog.models import CatalogItem, SearchFilters, SyncReport
from isa.catalog.routes import ROUTES
from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings
from isa.core.builder import AppBuilder
from isa.core.embeddings import shared_minilm
from isa.llm.client import model_client

__all__ = ["CatalogItem", "CatalogService", "SearchFilters", "SyncReport", "register"]


def build_service(builder: AppBuilder) -> CatalogService:
    settings = builder.settings.section("catalog", CatalogSettings)
    adapter = QueryAdapter.load(Path(settings.adapter_path)) if settings.adapter_path else None
    reranker = model_client(builder, settings.rerank_timeout_seconds, "isa-discovery") if settings.rerank else None
    return CatalogService(builder.state.db, shared_minilm(), settings, adapter, reranker)


def register(builder: AppBuilder) -> None:
    service = build_service(builder)
    builder.provide("catalog", service)
    builder.add_routes(*ROUTES)
    builder.allow_body("/catalog/import", service.settings.import_max_bytes)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with service.running():
            yield

    builder.add_lifespan(lifespan)

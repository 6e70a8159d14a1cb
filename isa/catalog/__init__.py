"""The catalog of tools, prompts and resources (ours and imported) and hybrid AI discovery over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from isa.catalog.adapter import QueryAdapter
from isa.catalog.doc2query import doc2query_writer
from isa.catalog.federation import Federation
from isa.catalog.models import CatalogItem, SearchFilters, SyncReport
from isa.catalog.routes import ROUTES
from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings
from isa.catalog.virtual import VirtualServer, VirtualServers
from isa.core.builder import AppBuilder
from isa.core.embeddings import shared_minilm
from isa.llm.client import model_client

__all__ = [
    "CatalogItem",
    "CatalogService",
    "Federation",
    "SearchFilters",
    "SyncReport",
    "VirtualServer",
    "VirtualServers",
    "register",
]


def build_service(builder: AppBuilder) -> CatalogService:
    settings = builder.settings.section("catalog", CatalogSettings)
    adapter = QueryAdapter.load(Path(settings.adapter_path)) if settings.adapter_path else None
    reranker = model_client(builder, settings.rerank_timeout_seconds, "isa-discovery") if settings.rerank else None
    doc2query = doc2query_writer(builder)
    return CatalogService(builder.state.db, shared_minilm(settings.encoder), settings, adapter, reranker, doc2query)


def register(builder: AppBuilder) -> None:
    service = build_service(builder)
    builder.provide("catalog", service)
    federation = Federation(service, builder.state.db, service.settings)
    builder.provide("catalog.federation", federation)

    async def wake_federation() -> None:
        federation.wake()

    service.add_listener(wake_federation)
    virtual = VirtualServers(builder.state.db)
    builder.provide("catalog.virtual", virtual)

    async def forget_virtual() -> None:
        virtual.forget()

    service.add_listener(forget_virtual)
    builder.add_routes(*ROUTES)
    builder.allow_body("/catalog/import", service.settings.import_max_bytes)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with service.running(), federation.running():
            yield

    builder.add_lifespan(lifespan)

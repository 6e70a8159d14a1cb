"""Catalog fixtures: one real MiniLM for the module, wrapped to count what gets embedded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
import pytest

from isa.auth.principal import Principal
from isa.catalog.models import CatalogItem
from isa.catalog.service import CatalogService
from isa.core.db import Database
from isa.core.embeddings import LocalMiniLM
from isa.core.settings import Settings

_MODEL = LocalMiniLM()
READER = Principal("catalog-reader", frozenset({"read"}), "api_key")


class CountingEmbedder:
    """The real model, counting the texts it was asked to embed."""

    def __init__(self) -> None:
        self.model_name = _MODEL.model_name
        self.dimensions = _MODEL.dimensions
        self.texts: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return _MODEL.embed_batch(texts)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_batch(texts).tolist()  # type: ignore[no-any-return]


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@asynccontextmanager
async def catalog(db_url: str, settings: Settings, embedder: Any) -> AsyncIterator[CatalogService]:
    db = Database(db_url, settings)
    await db.open()
    service = CatalogService(db, embedder)
    try:
        async with service.selections.running():
            yield service
    finally:
        await db.close()


def tool(name: str, description: str, **kw: Any) -> CatalogItem:
    return CatalogItem("tool", "isa", name, name, description, **kw)


OWN = [
    tool("web_search", "Search the web for pages matching a query", category="web", keywords=("search", "internet")),
    tool("get_weather", "Current weather and forecast for a city", category="weather", security_level="LOW"),
    tool("delete_memory", "Forget a stored memory by id", category="memory", security_level="HIGH"),
    CatalogItem(
        "prompt",
        "isa",
        "default_reason_prompt",
        "default_reason_prompt",
        "Reason about the next step",
        input_schema={"arguments": [{"name": "user_message", "description": "what the user said"}]},
    ),
    CatalogItem("resource", "isa", "memory://factual/{user_id}", "memory_factual", "Facts remembered about a user"),
]


async def eventually(condition: Any, timeout: float = 10.0) -> None:
    """Poll a sync `condition` without blocking the event loop (background writers must keep running)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)

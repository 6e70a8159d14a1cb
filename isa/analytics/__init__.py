"""Data analytics: the user's files (or a URL) as DuckDB tables over Parquet, questions answered with checked SQL."""

from __future__ import annotations

from isa.analytics.service import AnalyticsService
from isa.analytics.settings import AnalyticsSettings
from isa.core.builder import AppBuilder
from isa.core.embeddings import shared_minilm
from isa.files.service import FilesService
from isa.llm.client import model_client

__all__ = ["AnalyticsService", "AnalyticsSettings", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the analytics service; needs the files domain (registered before it on the same role)."""
    settings = builder.settings.section("analytics", AnalyticsSettings)
    client = model_client(builder.settings, settings.model_timeout_seconds, user_agent="isa-analytics")
    files = builder.state.get("files", FilesService)
    service = AnalyticsService(
        builder.state.db,
        files.storage,
        files,
        shared_minilm(),
        settings,
        client,
        builder.settings.data_dir / "analytics",
    )
    builder.provide("analytics", service)

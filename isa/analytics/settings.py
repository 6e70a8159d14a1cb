"""Settings of the analytics domain ([default.analytics] in config/settings.toml)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AnalyticsSettings(BaseModel):
    # The model group/alias on the model node that writes SQL (billed to the caller).
    sql_model: str = "default"
    model_timeout_seconds: float = Field(60.0, gt=0)
    # What one ingestion may read: a file of the caller's (the files API caps uploads anyway) or a URL's body.
    max_source_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    url_timeout_seconds: float = Field(30.0, gt=0)
    # A URL's body is held in memory while it downloads, so it gets its own (smaller) cap.
    max_url_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    # Internal hosts/networks a URL may reach on purpose (as [default.web]); everything else must be public.
    allow_hosts: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list)
    ingest_timeout_seconds: float = Field(300.0, gt=0)  # converting one table to Parquet and profiling it
    max_tables_per_user: int = Field(100, ge=1)
    max_columns: int = Field(500, ge=1)
    # One query: rows returned, rows counted for the total, wall time, DuckDB memory and threads.
    max_rows: int = Field(200, ge=1, le=10_000)
    count_limit: int = Field(1_000_000, ge=1)
    query_timeout_seconds: float = Field(20.0, gt=0)
    memory_limit: str = "512MB"
    threads: int = Field(2, ge=1)
    # Parquet copies of the user's tables kept on this node's disk between queries (oldest dropped past this).
    cache_bytes: int = Field(2 * 1024**3, ge=0)
    # Metadata entities (tables and columns) handed to the model as the relevant schema.
    link_top_k: int = Field(12, ge=1, le=100)
    sample_values: int = Field(5, ge=0, le=20)
    # Fusion of the metadata search: (1 - w) * cosine + w * normalised ts_rank.
    lexical_weight: float = Field(0.3, ge=0, le=1)
    chart_max_points: int = Field(500, ge=2)

"""[default.catalog] settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from isa.catalog.access import Floor
from isa.core.floors import DEFAULT_ENCODER, Encoder, discovery_floor
from isa.core.search import Weights

# BM25F weight of field C (category, keywords and the parameters' names and descriptions), next to A 2 (name) and
# B 1 (description): 2 rather than the generic 0.5, chosen on the dev splits for both the tuned and the stock encoder
# (ToolLens nDCG@10 +0.016 / +0.013; MetaTool, whose tools share one schema, unchanged), docs/benchmarks.md.
EXTRA_FIELD_WEIGHT = 2.0


class CatalogSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # In-process LRU of query embeddings (agents repeat themselves); 0 turns it off.
    query_cache_size: int = Field(default=2048, ge=0)
    # Selections waiting to be written to selection_history; beyond this they are dropped and counted.
    log_queue: int = Field(default=10_000, ge=1)
    # BM25 collection statistics are re-read at most this often (and on every catalog change).
    stats_ttl_seconds: float = Field(default=30.0, ge=0)
    # Threads computing query embeddings at once (onnxruntime releases the GIL).
    embed_threads: int = Field(default=2, ge=1)
    # Optional learned query adapter (.npz from tests/bench/train_discovery.py); empty: none.
    adapter_path: str = ""
    # Ranking (docs/discovery.md); the defaults were chosen on the dev splits.
    lexical_weight: float = Field(default=0.3, ge=0, le=1)
    examples_weight: float = Field(default=8.0, ge=0, le=100)  # z-score scale (see fusion)
    candidates: int = Field(default=40, ge=5, le=1000)
    # "zscore": each retriever's scores standardised over the query's candidates, then weighted; "max": cosine
    # plus BM25 divided by its maximum (the fusion before issue 24). Measured in docs/discovery.md.
    fusion: Literal["zscore", "max"] = "zscore"
    # Query and item encoder: "tuned" (our int8 fine-tune of MiniLM for tool retrieval, isa/core/encoders/README.md),
    # "int8" (the stock MiniLM graph dynamically quantised; same quality as fp32 on the dev splits, ~3x faster per
    # query) or "fp32" (the stock model). Changing it re-embeds the catalog once.
    encoder: Encoder = DEFAULT_ENCODER
    # Learning from usage: a query whose discovered tool the same user called successfully within the window
    # becomes an example of that tool. Runs every interval in each serving process (0: only `isa catalog learn`).
    learn_interval_seconds: float = Field(default=600.0, ge=0)
    learn_window_minutes: int = Field(default=10, ge=1, le=1440)
    learn_batch: int = Field(default=1000, ge=1)
    # Optional LLM step: the model node reorders the top `rerank_candidates` tools of /discover and
    # discover_tools, as the caller (billed to them). Off by default; any failure keeps the hybrid order.
    rerank: bool = False
    rerank_model: str = "fast"
    rerank_candidates: int = Field(default=20, ge=2, le=50)
    rerank_timeout_seconds: float = Field(default=10.0, gt=0)
    # Relevance floor (docs/discovery.md): items whose cosine similarity to the request is below it are not
    # offered; HIGH and CRITICAL tools need high_risk_margin more, a match through an item's example query
    # example_margin more. 0 turns it off. Unset: the encoder's own floor (isa/core/floors.py, chosen on dev).
    min_similarity: float | None = Field(default=None, ge=0, le=1)
    # An item also clears the floor when one clause of the request ("..., and ...", a second sentence) is similar
    # enough to it: a two-intent request is less similar to each of its tools than either clause alone.
    floor_per_clause: bool = True
    high_risk_margin: float = Field(default=0.1, ge=0, le=1)
    example_margin: float = Field(default=0.2, ge=0, le=1)
    # POST /catalog/import body limit.
    import_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Live servers added by URL (docs/federation.md): re-listed this often (and on their list_changed), each
    # MCP request to them bounded by the timeout, at most this many pages per listing.
    federation_sync_seconds: float = Field(default=300.0, gt=0)
    federation_timeout_seconds: float = Field(default=30.0, gt=0)
    federation_max_pages: int = Field(default=100, ge=1, le=10_000)
    # The environment variable holding the Fernet key(s) that seal stored upstream credentials (comma-separated:
    # the first seals, all open). Unset: servers with headers or per-user credentials can't be added.
    credentials_key_env: str = "ISA_CATALOG_CREDENTIALS_KEY"
    # Servers added with --auth oauth send the user back here (isa's callback, registered with the upstream). Empty:
    # mcp.public_url's origin + /catalog/oauth/callback, else (over HTTP) the request's own origin.
    oauth_redirect_url: str = Field(default="", pattern=r"^(https?://.+)?$")

    def similarity_floor(self) -> float:
        """`min_similarity` when set, else the floor chosen for the configured encoder."""
        return discovery_floor(self.encoder, self.min_similarity)

    def floor(self) -> Floor:
        return Floor(self.similarity_floor(), self.high_risk_margin, self.example_margin)

    def weights(self) -> Weights:
        return Weights(
            lexical=self.lexical_weight,
            examples=self.examples_weight,
            candidates=self.candidates,
            fusion=self.fusion,
            field_c=EXTRA_FIELD_WEIGHT,
        )


class Doc2QuerySettings(BaseModel):
    """The doc2query keys of `[default.catalog]` (read from the same section as CatalogSettings)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    doc2query_model: str = ""  # model alias on the model node; empty: no generated examples
    doc2query_per_tool: int = Field(default=5, ge=1, le=20)
    doc2query_batch: int = Field(default=8, ge=1, le=50)
    doc2query_concurrency: int = Field(default=2, ge=1, le=16)
    doc2query_timeout_seconds: float = Field(default=60.0, gt=0)  # one model call
    doc2query_budget_seconds: float = Field(default=300.0, gt=0)  # one import's whole generation round
    doc2query_user: str = Field(default="isa-catalog", min_length=1, max_length=200)

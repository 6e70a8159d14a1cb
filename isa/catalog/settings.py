"""[default.catalog] settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from isa.catalog.access import Floor
from isa.core.search import Weights


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
    examples_weight: float = Field(default=1.0, ge=0, le=100)
    candidates: int = Field(default=40, ge=5, le=1000)
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
    # example_margin more. 0 turns it off. Chosen on the dev splits.
    min_similarity: float = Field(default=0.2, ge=0, le=1)
    high_risk_margin: float = Field(default=0.1, ge=0, le=1)
    example_margin: float = Field(default=0.2, ge=0, le=1)
    # POST /catalog/import body limit.
    import_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    def floor(self) -> Floor:
        return Floor(self.min_similarity, self.high_risk_margin, self.example_margin)

    def weights(self) -> Weights:
        return Weights(lexical=self.lexical_weight, examples=self.examples_weight, candidates=self.candidates)

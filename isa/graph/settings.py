"""Settings of the knowledge graph ([default.graph] in config/settings.toml)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GraphSettings(BaseModel):
    max_document_chars: int = Field(2_000_000, ge=1000)  # bounds of the document reader (as the knowledge base's)
    max_pdf_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_pdf_pages: int = Field(500, ge=1)
    extraction_model: str = "default"  # model group/alias on the model node
    timeout_seconds: float = Field(60.0, gt=0)  # per model call
    chunk_size: int = Field(1500, ge=200, le=8000)  # characters of source text per extraction call
    chunk_overlap: int = Field(150, ge=0)
    max_chunks: int = Field(40, ge=1, le=1000)  # per document: bounds what one call can cost the caller
    concurrency: int = Field(4, ge=1, le=16)  # extraction calls in flight for one document
    # Duplicate resolution: same casefolded name and type, or a name embedding at least this similar (same type).
    merge_similarity: float = Field(0.9, ge=0.5, le=1.0)
    # Query: entities whose name embedding is at least this similar to the question seed the walk.
    link_min_similarity: float = Field(0.35, ge=0, le=1)
    link_top_k: int = Field(5, ge=1, le=50)
    hops: int = Field(2, ge=1, le=3)
    max_nodes: int = Field(60, ge=1, le=1000)  # entities a query subgraph may hold
    max_fanout: int = Field(200, ge=1, le=10000)  # edges per direction one entity expands along in the walk
    max_context_chunks: int = Field(8, ge=1, le=40)  # source chunks the answering model sees
    answer_model: str = "default"

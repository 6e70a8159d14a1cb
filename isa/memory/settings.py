"""Settings of the memory domain ([default.memory] in config/settings.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MemorySettings(BaseModel):
    weight_similarity: float = Field(0.8, ge=0, le=1)  # search score = w_s*cosine + w_i*importance + w_r*recency
    weight_importance: float = Field(0.1, ge=0, le=1)
    weight_recency: float = Field(0.1, ge=0, le=1)
    recency_half_life_days: float = Field(30.0, gt=0)
    # Search: the blend ranks each type's `search_candidates` candidates; 0 ranks every memory exactly.
    # hnsw.ef_search = search_ef_search for the search_shortlist = 0 path (an HNSW graph only where one was
    # created again after migration 0040).
    search_candidates: int = Field(40, ge=0, le=1000)
    search_ef_search: int = Field(100, ge=10, le=1000)
    # Candidates by sign bits (migration 0036): per type the `search_shortlist` rows of highest blend with the
    # cosine their bits estimate, read from the bits index alone, re-ranked by the exact blend; 0: each type's
    # nearest by distance (ORDER BY distance LIMIT search_candidates; exact without an HNSW graph).
    search_shortlist: int = Field(300, ge=0, le=5000)
    # Process-local shortlist index (migration 0042, docs/memory.md): a (user, type, model) with at least this many
    # memories has its shortlist computed from sign bits held in this process; 0 turns it off (SQL shortlist only).
    local_index_min_rows: int = Field(3000, ge=0)
    local_index_max_bytes: int = Field(268_435_456, ge=0)  # arrays: ~88 B/memory at 384-d, ~484 with vectors
    local_index_max_age_seconds: float = Field(600.0, gt=0)  # full reload after this (importance changes)
    # Per type shortlist where the local index computes it (0: search_shortlist); a longer one costs ~4 ms per
    # 1,000 more rows re-ranked at five types and raises recall.
    local_index_shortlist: int = Field(0, ge=0, le=5000)
    # Rank the local shortlist by slope * estimated cosine, the slope of the exact cosine on the estimate learnt from
    # the re-ranked shortlists (docs/memory.md); false: the SQL shortlist's formula exactly (slope 1).
    local_index_calibrate: bool = True
    # Also hold each memory's vector as int8 (+396 bytes per 384-d memory): the shortlist is scored again with it
    # and SQL re-ranks only the rows that may be among the search_candidates best per type (same rows, ~50-70).
    local_index_vectors: bool = True
    working_ttl_seconds: int = Field(86400, gt=0)
    embed_threads: int = Field(2, ge=1)
    chunk_size: int = Field(400, ge=50)  # characters per knowledge chunk
    chunk_overlap: int = Field(80, ge=0)
    max_document_chars: int = Field(2_000_000, ge=1000)
    # How structured memories are extracted from dialog text: "llm" through the model node (rules when it fails),
    # "rules" never calls a model, "auto" = llm when this node has a model client (services.model_url + tokens).
    extraction: Literal["auto", "llm", "rules"] = "auto"
    extraction_model: str = "default"  # model group/alias on the model node
    extraction_timeout_seconds: float = Field(30.0, gt=0)
    # A session gets a (rolling) summary in session_memories every this many messages; 0 turns it off.
    summary_every_messages: int = Field(20, ge=0)

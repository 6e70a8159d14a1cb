"""Settings of the knowledge domain ([default.knowledge] in config/settings.toml).

Chunk size, overlap and the document size cap stay in [default.memory] (chunk_size, chunk_overlap,
max_document_chars) where users already set them; the knowledge service reads them from the memory settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class KnowledgeSettings(BaseModel):
    """[default.knowledge] in config/settings.toml."""

    # weighted: (1 - w) * cosine + w * bm25 / max, in SQL; rrf: 1/(k + dense rank) + 1/(k + lexical rank)
    # over the same candidates (ranked here, so isa.core.search stays as discovery uses it).
    fusion: Literal["weighted", "rrf"] = "weighted"
    lexical_weight: float = Field(0.5, ge=0, le=1)  # chosen on the dev split (docs/benchmarks.md)
    rrf_k: float = Field(60.0, gt=0)
    candidates: int = Field(40, ge=5, le=400)  # per arm, before fusion
    # With shortlist = 0: the dense arm by distance with iterative HNSW scans (pgvector >= 0.8; an HNSW index only
    # where one was created again after migration 0040, else exact); false: exact per-user cosine.
    ann: bool = True
    ef_search: int = Field(200, ge=10, le=1000)  # HNSW candidate list of that scan (>= candidates)
    # Dense arm by sign bits (migration 0036): the `shortlist` chunks nearest by Hamming distance, read from the
    # bits index alone, ranked by exact cosine; needs no pgvector setting. 0: `ann` above decides.
    shortlist: int = Field(400, ge=0, le=5000)
    # BM25 arm: per query term at most this many postings, those of highest impact (migration 0036); 0: all.
    # Off by default: at 20,000 chunks a cap of 1,000 kept only 0.13 of the exact top 10 (docs/benchmarks.md).
    postings_cap: int = Field(0, ge=0, le=100_000)
    # Process-local index (migration 0043, docs/memory.md "Knowledge: process-local index"): a user with at least
    # this many chunks is searched from their sign bits (dense shortlist) and postings (exact BM25) held in this
    # process's memory; the rows are fetched, checked and fused in one SQL statement as before. 0: off (all SQL).
    local_index_min_rows: int = Field(3000, ge=0)
    local_index_max_bytes: int = Field(268_435_456, ge=0)  # budget of those arrays (~0.3 KB per chunk)
    # Loaded again in full after this (in the background): a safety net only, every change of a chunk moves the
    # generation, and a full load of a 100,000-chunk user's postings takes ~1-2 s of a database connection.
    local_index_max_age_seconds: float = Field(3600.0, gt=0)
    # The dense shortlist where the local index computes it (0: `shortlist`): free to compute there, each 1,000 more
    # chunks re-ranked by exact cosine in SQL cost ~3 ms, and raise recall.
    local_index_shortlist: int = Field(0, ge=0, le=20_000)
    # The lexical candidates where the local index computes BM25 (0: as the SQL arm, `candidates` in hybrid mode).
    # 160, the exact search's count (4 x candidates): a dense candidate among them counts its BM25 instead of 0;
    # hybrid recall@10 against the exact search 0.935 -> 1.000 at 100,000 chunks for +1.5 ms (docs/benchmarks.md).
    local_index_lexical_candidates: int = Field(160, ge=0, le=5000)
    max_pdf_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_pdf_pages: int = Field(500, ge=1)
    rerank: bool = False  # reorder hybrid results with the model node (costs the caller a model call)
    rerank_model: str = "default"
    rerank_candidates: int = Field(20, ge=2, le=50)  # hybrid results the model sees
    rerank_timeout_seconds: float = Field(20.0, gt=0)
    # generate_rag_response: answered by this model from the cited chunks when a model node is reachable
    # (in-process in role all); "" or no model: the extractive answer.
    answer_model: str = "default"
    answer_timeout_seconds: float = Field(60.0, gt=0)

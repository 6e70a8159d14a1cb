"""The retrieval paths of migration 0036 for users with many chunks: the dense arm's sign-bit shortlist re-ranked by
exact cosine, and the BM25 arm that reads at most `postings_cap` postings per query term (latency and recall at
20,000 and 100,000 chunks in tests/bench/bench_knowledge.py)."""

from __future__ import annotations

import json

import psycopg
import pytest

from isa.core.search import Query, Slice
from isa.core.search import hybrid_sql as build
from isa.core.settings import Settings
from isa.knowledge.service import CORPUS, KnowledgeService
from isa.knowledge.settings import KnowledgeSettings
from isa.knowledge.store import bm25_stats
from tests.knowledge.direct import HashEmbedder, add_users, knowledge

pytestmark = pytest.mark.anyio

EXACT = KnowledgeSettings(ann=False, shortlist=0, postings_cap=0)
WIDE = KnowledgeSettings(postings_cap=1000)


async def _ids(k: KnowledgeService, options: KnowledgeSettings, user: str, query: str, mode: str) -> list[str]:
    k.options = options
    return [h["id"] for h in await k.search(user, query, 5, mode)]  # type: ignore[arg-type]


async def test_a_capped_bm25_arm_keeps_the_rare_terms_chunk_first(settings: Settings, db_url: str) -> None:
    add_users(db_url, "cap-bm25", "cap-other")
    async with knowledge(settings, db_url) as k:
        for i in range(30):  # "python" has 31 postings; the cap reads 5 of them
            await k.store_text("cap-bm25", f"Python notes number {i} about python style and python tests.", {})
        rare = await k.store_text("cap-bm25", "The zanzibar module of Python parses tide tables.", {})
        await k.store_text("cap-other", "Zanzibar zanzibar python.", {})
        capped = await _ids(k, KnowledgeSettings(postings_cap=5), "cap-bm25", "python zanzibar", "lexical")
        exact = await _ids(k, EXACT, "cap-bm25", "python zanzibar", "lexical")
        scores = {}
        for name, options in (("capped", KnowledgeSettings(postings_cap=5)), ("exact", EXACT), ("wide", WIDE)):
            k.options = options
            scores[name] = [h["lex"] for h in await k.search("cap-bm25", "python zanzibar", 5, "lexical")]
    assert capped[0] == exact[0] == rare["id"]
    assert scores["capped"][1:] == scores["exact"][1:]  # the other four tie in BM25; the cap kept four of them
    # The rare chunk's one "python" (low impact, low idf) is beyond the cap: it loses only that small share.
    assert scores["exact"][0] * 0.95 < scores["capped"][0] < scores["exact"][0]
    assert scores["wide"] == scores["exact"]  # a cap above every term's postings is the exact BM25 ranking


async def test_the_dense_shortlist_finds_the_nearest_chunk_of_the_caller_only(settings: Settings, db_url: str) -> None:
    add_users(db_url, "bits-k", "bits-other")
    async with knowledge(settings, db_url) as k:
        for i in range(40):
            await k.store_text("bits-k", f"Entry {i}: weather log, wind {i} knots, cloud cover {i % 8} oktas.", {})
        heron = await k.store_text("bits-k", "Grey herons nest in tall alder trees by the lake.", {})
        await k.store_text("bits-other", "Grey herons nest in tall alder trees by the lake, they say.", {})
        query = "where do grey herons nest"
        short = await _ids(k, KnowledgeSettings(shortlist=5), "bits-k", query, "dense")
        ranked = {}
        for name, options in (("exact", EXACT), ("every", KnowledgeSettings(shortlist=41))):
            k.options = options
            ranked[name] = [(h["id"], h["dense"]) for h in await k.search("bits-k", query, 5, "dense")]
    assert short[0] == ranked["exact"][0][0] == ranked["every"][0][0] == heron["id"]
    # A shortlist of every row is the exact ranking. The forty weather rows share no word with the query and tie at
    # one score, so which four of them follow the heron is arbitrary: compare the scores, not those rows' ids.
    assert [s for _, s in ranked["every"]] == [s for _, s in ranked["exact"]]
    assert len(short) == 5


async def test_the_capped_arm_and_the_shortlist_read_their_0036_indexes(settings: Settings, db_url: str) -> None:
    add_users(db_url, "plan-k")
    async with knowledge(settings, db_url) as k:
        await k.store_text("plan-k", "Alder trees grow by lakes.", {})
        (vector,) = HashEmbedder().embed_batch(["alder lakes"])
        q = Query("alder lakes", vector, k.model, len(vector), "hybrid")
        mine = Slice("k", "user_id", "plan-k", 5, shortlist=400, postings_cap=1000)
        async with k.db.connection() as conn:
            stats = {"k": await bm25_stats(conn, "plan-k")}
        statement, params = build(CORPUS, q, [mine], k.weights, stats, ["id", "content"])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: show which index serves each arm
        plan = conn.execute(psycopg.sql.SQL("EXPLAIN (FORMAT JSON) ") + statement, params).fetchone()
    text = json.dumps(plan[0] if plan else {})
    assert "user_knowledge_postings_impact_idx" in text and "user_knowledge_user_bits_idx" in text
    assert "user_knowledge_embedding_minilm_idx" not in text

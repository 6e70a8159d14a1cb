"""search_knowledge's lexical arm is BM25 over per-user postings: rare terms weigh more, long chunks are normalised."""

from __future__ import annotations

import pytest

from isa.core.settings import Settings
from tests.knowledge.direct import add_users, knowledge, postings, recounted, stats
from tests.support.mcp_servers import sql

pytestmark = pytest.mark.anyio


async def test_a_rare_query_term_outranks_a_common_one_repeated(settings: Settings, db_url: str) -> None:
    add_users(db_url, "bm25-idf")
    async with knowledge(settings, db_url) as k:
        for i in range(30):  # "python" is in every chunk, several times in these
            await k.store_text("bm25-idf", f"Python python python notes number {i} about python style.", {})
        rare = await k.store_text("bm25-idf", "The zanzibar module of Python parses tide tables.", {})
        hits = await k.search("bm25-idf", "python zanzibar", 5, "lexical")
    assert hits[0]["id"] == rare["id"]
    assert hits[0]["score"] == 1.0 and all(h["lex"] < hits[0]["lex"] for h in hits[1:])


async def test_postings_and_statistics_follow_inserts_updates_and_deletes(settings: Settings, db_url: str) -> None:
    add_users(db_url, "bm25-life")
    async with knowledge(settings, db_url) as k:
        doc = await k.add_document("bm25-life", "Kestrels hover over meadows. " * 30, 120, 20, {}, "birds.txt")
        note = await k.store_text("bm25-life", "Herons wade; herons wait.", {})
        assert postings(db_url, note["id"]) == {"heron": 2, "wade": 1, "wait": 1}
        assert stats(db_url, "bm25-life") == recounted(db_url, "bm25-life")
        assert stats(db_url, "bm25-life")[0] == doc["chunks"] + 1
        sql(db_url, "UPDATE user_knowledge SET content = 'Egrets fish at dawn.' WHERE id = %s", (note["id"],))
        assert postings(db_url, note["id"]) == {"egret": 1, "fish": 1, "dawn": 1}
        assert stats(db_url, "bm25-life") == recounted(db_url, "bm25-life")
        assert [h["id"] for h in await k.search("bm25-life", "egrets", 3, "lexical")] == [note["id"]]
        assert await k.search("bm25-life", "herons", 3, "lexical") == []
        await k.delete_item("bm25-life", doc["ids"][0], whole_document=True)
        left = sql(
            db_url, "SELECT count(*) AS n FROM user_knowledge_postings WHERE user_id = 'bm25-life' AND term = 'kestrel'"
        )
        assert left[0]["n"] == 0
        assert stats(db_url, "bm25-life") == recounted(db_url, "bm25-life") == (1, 3)  # "at" is a stop word

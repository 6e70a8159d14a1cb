"""A5: BM25 postings and statistics are per user: another user's knowledge never counts in my ranking or results."""

from __future__ import annotations

import pytest

from isa.core.settings import Settings
from tests.knowledge.direct import add_users, knowledge, recounted, stats
from tests.support.mcp_servers import sql

pytestmark = pytest.mark.anyio

BOB = [
    "The aurora over Tromso was green last night.",
    "Ferries to Senja leave at seven.",
    "Reindeer stew is served on Fridays.",
]


async def test_a5_another_users_terms_never_count_in_my_bm25_statistics_or_results(
    settings: Settings, db_url: str
) -> None:
    add_users(db_url, "bm25-alice", "bm25-bob")
    async with knowledge(settings, db_url) as k:
        for text in BOB:
            await k.store_text("bm25-bob", text, {})
        bob_stats = stats(db_url, "bm25-bob")
        before = {m: await k.search("bm25-bob", "aurora ferries", 10, m) for m in ("lexical", "hybrid")}  # type: ignore[arg-type]
        # Alice makes "aurora" common and her chunks long: with shared statistics bob's idf and avgdl would move.
        alice = await k.add_document(
            "bm25-alice", "Aurora aurora zeppelin borealis forecasts. " * 200, 300, 0, {}, None
        )
        alice_ids = set(alice["ids"])
        assert stats(db_url, "bm25-bob") == bob_stats == recounted(db_url, "bm25-bob")
        assert stats(db_url, "bm25-alice") == recounted(db_url, "bm25-alice")
        assert stats(db_url, "bm25-alice")[0] == len(alice_ids)
        for mode, hits in before.items():
            after = await k.search("bm25-bob", "aurora ferries", 10, mode)  # type: ignore[arg-type]
            assert [(h["id"], h["lex"], h["score"]) for h in after] == [(h["id"], h["lex"], h["score"]) for h in hits]
            assert not alice_ids & {h["id"] for h in after}
        # A term only alice has finds nothing for bob, in any mode that reads postings.
        assert await k.search("bm25-bob", "zeppelin", 10, "lexical") == []
        hybrid = await k.search("bm25-bob", "zeppelin borealis", 10, "hybrid")
        assert not alice_ids & {h["id"] for h in hybrid} and all(h["lex"] == 0 for h in hybrid)
        mine = await k.search("bm25-alice", "zeppelin", 3, "lexical")
        assert mine and {h["id"] for h in mine} <= alice_ids  # the postings are there: the checks above could fail
        # Deleting alice's document leaves bob's statistics as they were.
        await k.delete_item("bm25-alice", alice["ids"][0], whole_document=True)
        assert stats(db_url, "bm25-alice") == (0, 0) and stats(db_url, "bm25-bob") == bob_stats
    rows = sql(db_url, "SELECT DISTINCT user_id FROM user_knowledge_postings WHERE term IN ('aurora', 'zeppelin')")
    assert {r["user_id"] for r in rows} == {"bm25-bob"}

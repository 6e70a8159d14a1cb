"""search_knowledge's lexical arm is BM25 over per-user postings: rare terms weigh more, long chunks are normalised."""

from __future__ import annotations

import math

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


async def test_lexical_scores_are_bm25_of_the_users_postings(settings: Settings, db_url: str) -> None:
    """Every lexical score is Okapi BM25 (k1 1.2, b 0.75) over the caller's postings, recomputed here from them:
    the per-term idf and the length normalisation the arm folds into per-term constants (issue #28) still add up to
    the textbook formula, for terms of different df and chunks of different length."""
    add_users(db_url, "bm25-exact", "bm25-other")
    texts = [
        "Otters juggle pebbles by the river.",
        "Otters and beavers build dams; beavers gnaw wood all night long by the cold river bank.",
        "A heron watches otters.",
        "Beavers beavers beavers.",
        "Pebbles, pebbles and more river pebbles under the bridge where the otters sleep in winter.",
        "Nothing about the animals here at all.",
    ]
    async with knowledge(settings, db_url) as k:
        for text in texts:
            await k.store_text("bm25-exact", text, {})
        await k.store_text("bm25-other", "Otters otters otters river river pebbles.", {})  # another user's postings
        hits = await k.search("bm25-exact", "otters beavers river pebbles", 10, "lexical")
    rows = sql(
        db_url,
        "SELECT entry_id::text AS id, term, tf_a, len_a FROM user_knowledge_postings WHERE user_id = 'bm25-exact'",
    )
    n, total = stats(db_url, "bm25-exact")
    avgdl = total / n
    terms = {"otter", "beaver", "river", "pebbl"}
    df = {t: sum(r["term"] == t for r in rows) for t in terms}
    expected: dict[str, float] = {}
    for r in rows:
        if r["term"] in terms:
            idf = math.log(1 + (n - df[r["term"]] + 0.5) / (df[r["term"]] + 0.5))
            tf, dl = r["tf_a"], r["len_a"]
            expected[r["id"]] = expected.get(r["id"], 0.0) + idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl))
    assert len(hits) == len(expected) == 5  # the chunk without any query term is not a hit
    assert {h["id"] for h in hits} == set(expected)
    for h in hits:
        assert h["lex"] == pytest.approx(expected[h["id"]], abs=1e-4)
    assert [h["id"] for h in hits] == sorted(expected, key=lambda i: -expected[i])

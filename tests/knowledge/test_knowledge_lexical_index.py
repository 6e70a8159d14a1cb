"""isa.knowledge.lexical_index: one user's postings in process memory score exactly like the SQL lexical arm."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from isa.core.db import Database, DictConnection
from isa.core.search import Query, Slice, Weights, hybrid_search
from isa.core.settings import Settings
from isa.knowledge.lexical_index import LexicalHits, Postings, query_terms
from isa.knowledge.service import CORPUS
from isa.knowledge.store import bm25_stats
from tests.knowledge.direct import add_users
from tests.support.mcp_servers import sql

pytestmark = pytest.mark.anyio

# KnowledgeService.weights: BM25 over field A alone (weight 1), k1 1.2, b 0.75.
WEIGHTS = Weights(examples=0.0, field_a=1.0, field_b=0.0, field_c=0.0)
# Made-up words in Zipf-like proportions: the first few in most chunks (long postings lists), the last in one or two.
VOCAB = [f"{a}{b}{c}" for a in ("bal", "cor", "dun", "fes", "gim") for b in ("ak", "ol", "up", "ew") for c in "xz"]
QUERIES = [
    "balakx",  # the most common word: in most chunks, ties among chunks of equal length and tf
    "gimewz",  # the rarest
    "balakx corolx dunupz the of",  # common words and stop words
    "fesewx gimolz gimupx balolz",
    "nobodyhasthis",  # a term no chunk has
    "onlyotherusers",  # a term only another user's chunks have
    "balakx nobodyhasthis onlyotherusers gimewx",
]


@asynccontextmanager
async def connection(settings: Settings, db_url: str) -> AsyncIterator[DictConnection]:
    db = Database(db_url, settings)
    await db.open()
    try:
        async with db.connection() as conn:
            yield conn
    finally:
        await db.close()


def texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 1.1 for i in range(len(VOCAB))]
    out = []
    for _ in range(count):
        words = rng.choices(VOCAB, weights, k=rng.randint(1, 40))
        out.append(" ".join(words) + (" and the" if rng.random() < 0.3 else ""))
    return out + out[:5]  # exact duplicates: equal scores, ordered by id


def insert(db_url: str, user: str, contents: list[str]) -> None:
    sql(db_url, "INSERT INTO user_knowledge (user_id, content) SELECT %s, unnest(%s::text[])", (user, contents))


async def sql_arm(conn: DictConnection, user: str, query: str, k: int) -> LexicalHits:
    """What KnowledgeService.search's lexical mode ranks by (unrounded), straight from isa.core.search."""
    stats = {"k": await bm25_stats(conn, user)}
    q = Query(query, None, "m", 384, "lexical")
    rows = await hybrid_search(conn, CORPUS, q, [Slice("k", "user_id", user, k, exact=True)], WEIGHTS, stats, ["id"])
    return LexicalHits([str(r["id"]) for r in rows], [float(r["lex"]) for r in rows])


async def local(conn: DictConnection, postings: Postings, user: str, query: str, k: int) -> LexicalHits:
    stats = await bm25_stats(conn, user)
    terms = await query_terms(conn, query)
    return postings.top(terms, k, k1=WEIGHTS.k1, b=WEIGHTS.b, n=stats.rows, avgdl=stats.len_a)


def assert_same(got: LexicalHits, want: LexicalHits, k: int) -> None:
    """`got` is `want`'s first k, in order; `want` (the SQL arm's, with more rows than k) may order two rows the
    other way only when their scores differ by the rounding of their sums alone: Postgres adds a row's terms in
    the order its (possibly parallel) scan delivers them, so equal rows can differ in the last bit there."""
    assert got.scores == pytest.approx(want.scores[:k], rel=1e-9)
    assert len(got.ids) == len(set(got.ids)) == min(k, len(want.ids))
    sql_score = dict(zip(want.ids, want.scores, strict=True))
    for i, id_ in enumerate(got.ids):
        if id_ != want.ids[i]:  # not an exact tie (those are ordered by id), a near one
            assert id_ in sql_score and sql_score[id_] != want.scores[i]
            assert sql_score[id_] == pytest.approx(want.scores[i], rel=1e-12)


def contents(p: Postings) -> dict[bytes, tuple[int, float, dict[str, int]]]:
    """Per chunk id: its length, created_at and term frequencies, whatever the row numbering."""
    names = {i: t for t, i in p.terms.items()}
    out = {p.ids[r].tobytes(): (int(p.lengths[r]), float(p.created[r]), {}) for r in range(len(p))}
    for t in range(len(p.terms)):
        for j in range(int(p.starts[t]), int(p.starts[t + 1])):
            tfs: dict[str, int] = out[p.ids[p.rows[j]].tobytes()][2]
            assert names[t] not in tfs
            tfs[names[t]] = int(p.tfs[j])
    return out


async def test_top_ranks_and_scores_like_the_sql_lexical_arm(settings: Settings, db_url: str) -> None:
    add_users(db_url, "lex-a", "lex-b", "lex-c")
    insert(db_url, "lex-a", texts(1, 400))
    insert(db_url, "lex-b", [t + " onlyotherusers" for t in texts(2, 150)])
    insert(db_url, "lex-c", texts(3, 50))
    async with connection(settings, db_url) as conn:
        postings = await Postings.load(conn, "lex-a")
        assert len(postings) == 405
        mine = {r["id"] for r in sql(db_url, "SELECT id::text FROM user_knowledge WHERE user_id = 'lex-a'")}
        for query in QUERIES:
            want = await sql_arm(conn, "lex-a", query, 1000)  # more than any query matches
            for k in (1, 10, 1000):
                got = await local(conn, postings, "lex-a", query, k)
                assert_same(got, want, k)
                assert set(got.ids) <= mine
        assert len((await local(conn, postings, "lex-a", "balakx", 1000)).ids) > 200  # the common term
        assert (await local(conn, postings, "lex-a", "onlyotherusers nobodyhasthis", 10)).ids == []
        other = await Postings.load(conn, "lex-b")
        hits = await local(conn, other, "lex-b", "onlyotherusers", 1000)
        assert_same(hits, await sql_arm(conn, "lex-b", "onlyotherusers", 1000), 1000)
        assert len(hits.ids) == 155 and not set(hits.ids) & mine
    sizes = sql(db_url, "SELECT count(*) AS n FROM user_knowledge_postings WHERE user_id = 'lex-a'")
    assert postings.postings == sizes[0]["n"]
    assert postings.nbytes > postings.postings * 6


async def test_merged_after_more_inserts_equals_a_fresh_load(settings: Settings, db_url: str) -> None:
    add_users(db_url, "lex-m", "lex-n")
    insert(db_url, "lex-m", texts(4, 120))
    async with connection(settings, db_url) as conn:
        first = await Postings.load(conn, "lex-m")
        newest = first.newest
        assert newest is not None
        insert(db_url, "lex-m", texts(5, 60))
        insert(db_url, "lex-m", ["a brandnewword chunk balakx", "the and of"])  # a new term; a chunk of stop words
        insert(db_url, "lex-n", texts(6, 30))
        # Since a time before the first load's newest chunk: the overlap comes back and is not added twice.
        newer = await Postings.load(conn, "lex-m", since=newest - 60)
        assert len(newer) > 62
        merged = first.merged(newer)
        fresh = await Postings.load(conn, "lex-m")
        assert len(merged) == len(fresh) == 120 + 5 + 60 + 5 + 2
        assert merged.postings == fresh.postings
        assert contents(merged) == contents(fresh)
        assert merged.df("brandnewword") == 1 and merged.df("balakx") == fresh.df("balakx")
        for query in [*QUERIES, "brandnewword", "brandnewword balakx"]:
            want = await sql_arm(conn, "lex-m", query, 1000)
            assert_same(await local(conn, merged, "lex-m", query, 20), want, 20)
        assert first.merged(await Postings.load(conn, "lex-m", since=newest + 3600)) is first  # nothing newer


async def test_an_empty_user_and_a_user_of_stop_words(settings: Settings, db_url: str) -> None:
    add_users(db_url, "lex-empty", "lex-stop")
    insert(db_url, "lex-stop", ["the and of", "it is what it is"])
    async with connection(settings, db_url) as conn:
        empty = await Postings.load(conn, "lex-empty")
        assert len(empty) == 0 and empty.postings == 0 and empty.newest is None
        assert empty.top(["balakx"], 10, k1=1.2, b=0.75, n=1, avgdl=1.0) == LexicalHits([], [])
        stop = await Postings.load(conn, "lex-stop")
        assert len(stop) == 2 and stop.postings == 0  # rows without a lexeme count towards N, match nothing
        assert (await local(conn, stop, "lex-stop", "what is it", 10)).ids == []
        assert empty.merged(stop).postings == 0 and len(empty.merged(stop)) == 2


async def test_query_terms_are_the_sql_arms_lexemes(settings: Settings, db_url: str) -> None:
    async with connection(settings, db_url) as conn:
        assert await query_terms(conn, "The running dogs ran, and a dog runs!") == ["dog", "ran", "run"]
        assert await query_terms(conn, "the of and") == []


async def test_chunks_whose_ids_share_their_first_half_load_right(settings: Settings, db_url: str) -> None:
    """Postings name chunks by uuid, found among the loaded ids by the first half's leading bits: ids that are not
    uniform (here all in one bucket, in pairs sharing the whole first half) take the exact search."""
    add_users(db_url, "lex-ids")
    chunks = texts(7, 150)
    ids = [f"00000000-0000-4000-{8000 + i // 2:04x}-{i:012x}" for i in range(len(chunks))]
    sql(
        db_url,
        "INSERT INTO user_knowledge (id, user_id, content) SELECT i::uuid, 'lex-ids', c"
        " FROM unnest(%s::text[], %s::text[]) AS x(i, c)",
        (ids, chunks),
    )
    async with connection(settings, db_url) as conn:
        postings = await Postings.load(conn, "lex-ids")
        assert sorted(str(uuid.UUID(bytes=b)) for b in contents(postings)) == sorted(ids)
        for query in QUERIES:
            want = await sql_arm(conn, "lex-ids", query, 1000)
            assert_same(await local(conn, postings, "lex-ids", query, 30), want, 30)

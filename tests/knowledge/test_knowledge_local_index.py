"""The process-local knowledge index (isa/knowledge/local_index.py, migration 0043) through KnowledgeService.search.

A service with `local_index_min_rows` below the users' chunk counts computes the dense arm's sign-bit shortlist
(and, with the postings loader, the exact BM25 arm) from arrays it holds; one with the index off computes both in
SQL (today's path). Both must return the same rows and scores in every mode, see chunks other connections (other
processes) write or delete at once, and never another user's chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import numpy as np
import psycopg
import pytest

from isa.core.db import Database, vector_literal
from isa.core.search import Bm25Stats, Query, Slice, hybrid_search
from isa.core.settings import Settings
from isa.knowledge import store
from isa.knowledge.lexical_index import LexicalHits, Postings
from isa.knowledge.local_index import KnowledgeLocalIndex, State
from isa.knowledge.service import COLUMNS, CORPUS, KnowledgeService
from isa.knowledge.settings import KnowledgeSettings
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings
from tests.knowledge.direct import add_users
from tests.support.mcp_servers import sql

pytestmark = pytest.mark.anyio

BIG, BIG2, SMALL = "local-a", "local-b", "local-small"
WORDS = [f"w{i}" for i in range(80)] + ["heron", "alder", "tide", "quartz", "lantern", "orchard"]
QUERIES = ["heron alder w3", "w5 w17 w40", "quartz lantern", "w1 w2 w3 w4 w5 w6", "orchard tide w70"]


class WordEmbedder:
    """The normalised sum of a fixed random vector per word: texts sharing words are near, and unlike hashed
    one-hot words every vector has all 384 components (sign bits that spread, cosines that rarely tie)."""

    model_name = "all-MiniLM-L6-v2"
    dimensions = 384

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = np.zeros(self.dimensions)
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                v += np.random.default_rng(int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)).normal(size=384)
            out.append([float(x) for x in v / (np.linalg.norm(v) or 1.0)])
        return out


MODEL = WordEmbedder.model_name


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(n)]


def insert(db_url: str, user: str, texts: list[str], created: str = "now()") -> list[str]:
    """Chunks written by another connection (as another process would), embedded like the service does."""
    vectors = [vector_literal(v) for v in WordEmbedder().embed_batch(texts)]
    rows = sql(
        db_url,
        "INSERT INTO user_knowledge (user_id, content, embedding, embedding_model, created_at)"
        f" SELECT %s, t, v::vector(384), %s, {created} FROM unnest(%s::text[], %s::text[]) AS x(t, v)"
        " RETURNING id::text",
        (user, MODEL, texts, vectors),
    )
    return [str(r["id"]) for r in rows]


def _options(min_rows: int, **extra: Any) -> KnowledgeSettings:
    # A shortlist of 40 of 300 chunks: which chunks make it matters (a shortlist of every row is exact anyway).
    # Lexical candidates as the SQL arm takes them, so both paths must agree row for row (more has its own test).
    fields: dict[str, Any] = {"local_index_lexical_candidates": 0, **extra}
    return KnowledgeSettings(shortlist=40, candidates=10, local_index_min_rows=min_rows, **fields)


def big_user(db_url: str, user: str, seed: int, rows: int = 300) -> str:
    add_users(db_url, user)
    insert(db_url, user, _texts(seed, rows))
    return user


@pytest.fixture(scope="module")
def seeded(db_url: str) -> str:
    """Two users above the tests' min_rows (100) and one below; tests that write make users of their own."""
    big_user(db_url, BIG, 1)
    big_user(db_url, BIG2, 2)
    big_user(db_url, SMALL, 3, rows=50)
    return db_url


@pytest.fixture
async def services(settings: Settings, seeded: str) -> AsyncIterator[tuple[KnowledgeService, KnowledgeService]]:
    """(with the local index for users of >= 100 chunks, without it) on the same database."""
    db = Database(seeded, settings)
    await db.open()
    memory = MemoryService(db, WordEmbedder(), MemorySettings())  # type: ignore[arg-type]
    local = KnowledgeService(memory, _options(100))
    try:
        yield local, KnowledgeService(memory, _options(0))
    finally:
        await db.close()
    # The arrays really answered: every test searched a large user's dense arm through them (the tests that search
    # lexically check the lexical arm's count themselves).
    assert local.local_index is not None and local.local_index.loads["dense"] > 0


async def warm(service: KnowledgeService, user: str, mode: str = "hybrid") -> None:
    """A large user's first search is answered by SQL while its arrays load in the background; wait for them."""
    index = service.local_index
    assert index is not None
    answered = dict(index.loads)
    await service.search(user, "warm up", 10, mode)  # type: ignore[arg-type]
    assert (index.loads["dense"], index.loads["lexical"]) == (answered["dense"], answered["lexical"])
    await index.settled()
    assert index.loads["full"] > answered["full"]


def _key(rows: list[dict[str, Any]]) -> list[tuple[str, float, float, float]]:
    return [(r["id"], r["score"], r["dense"], r["lex"]) for r in rows]


def _owners(db_url: str, ids: list[str]) -> set[str]:
    rows = sql(db_url, "SELECT DISTINCT user_id FROM user_knowledge WHERE id = ANY(%s::uuid[])", (ids,))
    return {str(r["user_id"]) for r in rows}


async def test_the_local_index_returns_what_the_sql_path_returns_in_every_mode(
    services: tuple[KnowledgeService, KnowledgeService], db_url: str
) -> None:
    local, today = services
    assert local.local_index is not None
    for user in (BIG, BIG2):
        await warm(local, user)
    for fusion in ("weighted", "rrf"):
        for service in (local, today):
            service.options = service.options.model_copy(update={"fusion": fusion})
        for user in (BIG, BIG2, SMALL):
            for mode in ("dense", "lexical", "hybrid"):
                for query in QUERIES:
                    got = await local.search(user, query, 10, mode)  # type: ignore[arg-type]
                    want = await today.search(user, query, 10, mode)  # type: ignore[arg-type]
                    assert _key(got) == _key(want), (user, mode, query, fusion)
                    assert got and _owners(db_url, [h["id"] for h in got]) == {user}
    assert local.local_index.nbytes > 0
    assert local.local_index.loads["full"] == 4  # sign bits and postings of each large user, once
    # 2 users x 2 fusions x 5 queries, hybrid and lexical modes
    assert local.local_index.loads["lexical"] == 2 * 2 * 5 * 2


async def test_a_chunk_another_connection_inserts_is_found_and_one_it_deletes_never_returns(
    services: tuple[KnowledgeService, KnowledgeService], db_url: str
) -> None:
    local, today = services
    assert local.local_index is not None
    user = big_user(db_url, "local-insert", 4)
    await warm(local, user)
    loads = dict(local.local_index.loads)
    text = "zephyr quokka marmalade"  # words no other chunk has
    (new,) = insert(db_url, user, [text])
    for mode in ("dense", "hybrid", "lexical"):
        hits = await local.search(user, text, 10, mode)  # type: ignore[arg-type]
        assert hits[0]["id"] == new
        assert _key(hits) == _key(await today.search(user, text, 10, mode))  # type: ignore[arg-type]
    assert local.local_index.loads["append"] > loads["append"]  # an insert appends, no full load
    assert local.local_index.loads["full"] == loads["full"]
    assert local.local_index.loads["lexical"] == loads["lexical"] + 2  # hybrid and lexical
    sql(db_url, "DELETE FROM user_knowledge WHERE id = %s", (new,))
    for settle in (False, True):  # while the arrays load again (SQL answers), then from them
        for mode in ("dense", "hybrid", "lexical"):
            hits = await local.search(user, text, 10, mode)  # type: ignore[arg-type]
            assert new not in {h["id"] for h in hits}
            assert _key(hits) == _key(await today.search(user, text, 10, mode))  # type: ignore[arg-type]
        if not settle:
            await local.local_index.settled()
    assert local.local_index.loads["full"] > loads["full"]  # a delete loads again
    assert local.local_index.loads["lexical"] >= loads["lexical"] + 4


async def test_a_late_chunk_with_an_old_created_at_forces_a_full_load(
    services: tuple[KnowledgeService, KnowledgeService], db_url: str
) -> None:
    """A row committed after the newest held one but created earlier than the append's window is not read by the
    append; the row count then differs from the statistics' and the arrays are loaded in full."""
    local, _ = services
    assert local.local_index is not None
    user = big_user(db_url, "local-late", 5)
    await warm(local, user, "dense")
    full = local.local_index.loads["full"]
    (late,) = insert(db_url, user, ["zephyr quokka marmalade"], created="now() - interval '1 day'")
    hits = await local.search(user, "zephyr quokka marmalade", 10, "dense")
    assert hits[0]["id"] == late
    await local.local_index.settled()
    assert local.local_index.loads["full"] == full + 1
    dense = local.local_index.loads["dense"]
    hits = await local.search(user, "zephyr quokka marmalade", 10, "dense")
    assert hits[0]["id"] == late and local.local_index.loads["dense"] == dense + 1


async def test_an_embedding_changed_in_place_moves_at_once(
    services: tuple[KnowledgeService, KnowledgeService], db_url: str
) -> None:
    local, today = services
    user = big_user(db_url, "local-moved", 6)
    await warm(local, user, "dense")
    target = sql(db_url, "SELECT id::text FROM user_knowledge WHERE user_id = %s LIMIT 1", (user,))[0]["id"]
    (moved,) = WordEmbedder().embed_batch(["zephyr quokka marmalade"])
    sql(db_url, "UPDATE user_knowledge SET embedding = %s::vector(384) WHERE id = %s", (vector_literal(moved), target))
    assert local.local_index is not None
    for _ in range(2):  # while the arrays load again, then from them
        hits = await local.search(user, "zephyr quokka marmalade", 10, "dense")
        assert hits[0]["id"] == target
        assert _key(hits) == _key(await today.search(user, "zephyr quokka marmalade", 10, "dense"))
        await local.local_index.settled()


async def test_a_failing_load_is_logged_and_the_sql_path_answers(
    services: tuple[KnowledgeService, KnowledgeService], monkeypatch: pytest.MonkeyPatch
) -> None:
    local, today = services
    assert local.local_index is not None

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.errors.QueryCanceled("statement timeout")

    with monkeypatch.context() as m:
        m.setattr(store, "dense_rows", broken)
        m.setattr(Postings, "load", broken)
        for mode in ("dense", "hybrid", "lexical"):
            got = await local.search(BIG, "heron alder", 10, mode)  # type: ignore[arg-type]
            assert _key(got) == _key(await today.search(BIG, "heron alder", 10, mode))  # type: ignore[arg-type]
        await local.local_index.settled()  # the loads failed in the background: logged, the user forgotten
        assert local.local_index.loads["dense"] == local.local_index.loads["lexical"] == 0
        assert local.local_index.nbytes == 0
    await local.search(BIG, "heron alder", 10, "dense")  # a failed load is not retried at once: SQL answers
    assert not local.local_index._tasks
    local.local_index._failed.clear()  # (as if a minute had passed)
    await warm(local, BIG, "dense")  # the next search loads again, and then the arrays answer
    await local.search(BIG, "heron alder", 10, "dense")


async def test_arrays_beyond_the_byte_budget_are_dropped_least_recently_used_first(
    services: tuple[KnowledgeService, KnowledgeService], settings: Settings, db_url: str
) -> None:
    local, today = services
    assert local.local_index is not None
    await warm(local, BIG, "dense")
    await local.search(BIG, "heron", 10, "dense")
    one_user = local.local_index.nbytes
    small = KnowledgeService(local.memory, _options(100, local_index_max_bytes=one_user + one_user // 2))
    assert small.local_index is not None
    for user in (BIG, BIG2, BIG):
        await warm(small, user, "dense")
        got = await small.search(user, "heron alder", 10, "dense")
        assert _key(got) == _key(await today.search(user, "heron alder", 10, "dense"))
        assert 0 < small.local_index.nbytes <= small.local_index._held.max_bytes
        assert [k[1] for k in small.local_index._held] == [user]  # the other user's arrays made room
    assert small.local_index.loads["full"] == 3


async def test_the_generation_moves_with_every_change_and_the_reload_generation_not_with_inserts(db_url: str) -> None:
    add_users(db_url, "gen-k")

    def counters() -> tuple[int, int]:
        row = sql(db_url, "SELECT generation, reload_generation FROM user_knowledge_bm25_stats WHERE user_id = 'gen-k'")
        return int(row[0]["generation"]), int(row[0]["reload_generation"])

    a, b = insert(db_url, "gen-k", ["alder heron", "quartz tide"])
    g1, r1 = counters()
    insert(db_url, "gen-k", ["orchard lantern"])
    g2, r2 = counters()
    assert g2 != g1 and r2 == r1
    seen = {g1, g2}
    changes = [
        "UPDATE user_knowledge SET content = 'alder heron tide' WHERE id = %s",
        "UPDATE user_knowledge SET embedding = (SELECT embedding FROM user_knowledge WHERE content = 'quartz tide')"
        " WHERE id = %s",
        "UPDATE user_knowledge SET metadata = '{\"a\": 1}' WHERE id = %s",  # neither text nor embedding: no change
        "DELETE FROM user_knowledge WHERE id = %s",
    ]
    for i, change in enumerate(changes):
        before = counters()
        sql(db_url, change, (a if i < 3 else b,))
        g, r = counters()
        if i == 2:
            assert (g, r) == before
            continue
        assert g == r and g not in seen
        seen.add(g)


async def test_more_lexical_candidates_fuse_as_the_sql_with_the_exact_searchs_lexical_count(
    services: tuple[KnowledgeService, KnowledgeService],
) -> None:
    """local_index_lexical_candidates = 4 x candidates is the count the SQL lexical arm takes for an exact slice:
    the local hybrid search then returns what that SQL returns (same fusion, the same shortlisted dense arm)."""
    local, _ = services
    wide = KnowledgeService(local.memory, _options(100, local_index_lexical_candidates=40))
    await warm(wide, BIG)
    await warm(local, BIG, "dense")
    for query in QUERIES:
        got = await wide.search(BIG, query, 10, "hybrid")
        (vector,) = WordEmbedder().embed_batch([query])
        q = Query(query, vector, MODEL, 384, "hybrid")
        mine = Slice("k", "user_id", BIG, 10, exact=True, shortlist=40)
        async with wide.db.connection() as conn:
            stats = {"k": await store.bm25_stats(conn, BIG)}
            want = await hybrid_search(conn, CORPUS, q, [mine], wide.weights, stats, ["id", *COLUMNS])
        assert [(h["id"], h["score"]) for h in got] == [(str(r["id"]), round(float(r["score"]), 4)) for r in want]
        await local.search(BIG, query, 10, "dense")  # (the fixture's check)
    assert wide.local_index is not None and wide.local_index.loads["lexical"] == len(QUERIES)


async def _service(settings: Settings, db_url: str, **options: Any) -> tuple[Database, KnowledgeService]:
    db = Database(db_url, settings)
    await db.open()
    memory = MemoryService(db, WordEmbedder(), MemorySettings())  # type: ignore[arg-type]
    return db, KnowledgeService(memory, _options(100, **options))


def _gated(index: KnowledgeLocalIndex) -> list[anyio.Event]:
    """Make every postings load wait for its own gate (in call order) and return the gates."""
    loader, gates = index.postings_loader, [anyio.Event() for _ in range(4)]
    assert loader is not None
    calls = 0

    async def held_back(conn: Any, user_id: str, since: float | None) -> Any:
        nonlocal calls
        gate, calls = gates[calls], calls + 1
        await gate.wait()
        return await loader(conn, user_id, since)

    index.postings_loader = held_back
    return gates


async def test_searches_while_a_full_load_runs_take_the_sql_arms(settings: Settings, db_url: str) -> None:
    """A large user's searches never wait for the background load of its arrays: until it is done SQL answers."""
    user = big_user(db_url, "kli-wait", 24)
    db, service = await _service(settings, db_url)
    index = service.local_index
    assert index is not None
    gates = _gated(index)
    try:
        first = await service.search(user, "heron alder", 10, "lexical")  # starts the load, which now waits
        with anyio.fail_after(10):
            second = await service.search(user, "heron alder", 10, "lexical")
        assert _key(first) == _key(second) and index.loads["lexical"] == 0  # both answered by SQL
        gates[0].set()
        await index.settled()
        assert _key(await service.search(user, "heron alder", 10, "lexical")) == _key(first)
        assert index.loads["lexical"] == 1  # the arrays answer once loaded
    finally:
        for gate in gates:
            gate.set()
        await service.close()
        await db.close()


async def test_a_user_whose_arrays_exceed_the_budget_is_not_loaded_on_every_search(
    settings: Settings, db_url: str
) -> None:
    """Arrays larger than local_index_max_bytes are not kept; the user's searches then stay on SQL instead of
    starting a full load each time, until the user's chunk count changes."""
    user = big_user(db_url, "kli-huge", 21)
    db, service = await _service(settings, db_url, local_index_max_bytes=2000)
    index = service.local_index
    assert index is not None
    try:
        for _ in range(5):
            await service.search(user, "heron alder", 10, "hybrid")
            await index.settled()
        assert index.loads["full"] == 2 and index.nbytes == 0  # one load per arm, then SQL
        insert(db_url, user, ["another chunk about herons"])
        await service.search(user, "heron alder", 10, "hybrid")
        await index.settled()
        assert index.loads["full"] == 4  # a new size: tried again
    finally:
        await service.close()
        await db.close()


async def test_close_cancels_the_background_loads(settings: Settings, db_url: str) -> None:
    user = big_user(db_url, "kli-close", 23)
    db, service = await _service(settings, db_url)
    index = service.local_index
    assert index is not None
    gates = _gated(index)
    try:
        await service.search(user, "heron", 10, "lexical")  # a background load, waiting at its gate
        with anyio.fail_after(30):  # close() itself waits at most 5 s
            await service.close()
        for gate in gates:
            gate.set()
        await index.settled()
        assert index.nbytes == 0  # the cancelled load never finished, not even once its gate opened
    finally:
        for gate in gates:
            gate.set()
        await db.close()


async def test_one_refresh_of_a_key_at_a_time() -> None:
    """A search that arrives while another refreshes the same arrays waits for it, even right after the lock was
    handed from one refresh to the next (anyio gives a released lock to the waiter, which then still owns it)."""
    active, peak, gates, calls = 0, 0, [anyio.Event() for _ in range(3)], 0

    class Held:
        nbytes, newest = 10, None

        def __len__(self) -> int:
            return 5000

        def top(self, *args: Any, **kwargs: Any) -> LexicalHits:
            return LexicalHits([], [])

    async def loader(conn: Any, user_id: str, since: float | None) -> Held:
        nonlocal active, peak, calls
        gate, calls = gates[calls], calls + 1
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1
        return Held()

    class Conn:
        def transaction(self) -> Any:
            return contextlib.nullcontext()

    index = KnowledgeLocalIndex((100, 10**6, 3600.0), loader, None)

    def state(generation: int) -> State:
        return State(Bm25Stats(rows=5000), 5000, generation, generation, [])

    async def search(generation: int) -> None:
        await index.candidates(Conn(), "u", MODEL, None, state(generation), shortlist=0, lexical=10, k1=1.2, b=0.75)  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        tg.start_soon(search, 1)  # loads generation 1 (waits at gate 0)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(search, 2)  # waits for the lock
        await anyio.wait_all_tasks_blocked()
        gates[0].set()  # the first ends; the second takes the lock over and loads generation 2 (gate 1)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(search, 2)  # must wait for the second, not load beside it
        await anyio.wait_all_tasks_blocked()
        assert active == 1
        gates[1].set()
        gates[2].set()
    assert peak == 1


def test_truncate_leaves_no_user_with_rows(empty_db_url: str) -> None:
    """TRUNCATE resets every user's BM25 statistics (N, total length) and moves the generations (0043)."""
    from isa.core.migrations import migrate

    migrate(empty_db_url)
    add_users(empty_db_url, "ta", "tb")
    for user, n in (("ta", 5), ("tb", 3)):
        sql(
            empty_db_url,
            "INSERT INTO user_knowledge (user_id, content)"
            " SELECT %s, 'hello world ' || g FROM generate_series(1, %s) g",
            (user, n),
        )
    before = {r["user_id"]: r for r in sql(empty_db_url, "SELECT * FROM user_knowledge_bm25_stats", ())}
    sql(empty_db_url, "TRUNCATE user_knowledge CASCADE", ())
    after = {r["user_id"]: r for r in sql(empty_db_url, "SELECT * FROM user_knowledge_bm25_stats", ())}
    assert {u: (r["entries"], r["total_len"]) for u, r in after.items()} == {"ta": (0, 0), "tb": (0, 0)}
    assert all(after[u]["reload_generation"] != before[u]["reload_generation"] for u in after)

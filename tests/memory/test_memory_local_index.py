"""The process-local shortlist index (isa/memory/local_index.py, migration 0042) through MemoryService.search.

A service with `local_index_min_rows` below the users' row counts computes each type's shortlist from sign bits it
holds; one with the index off computes it in SQL (today's path). Both must return the same rows and scores, see
rows other connections (other processes) write or delete at once, and never another user's rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from isa.core.db import Database, vector_literal
from isa.core.settings import Settings
from isa.memory import local_index, store
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings
from isa.memory.store import Filters, search_filters
from tests.support.mcp_servers import sql
from tests.support.memory_seed import MODEL, seed

pytestmark = pytest.mark.anyio

USER, OTHER = "bench-1", "bench-2"  # 200 rows of each type each (seed: row g belongs to bench-(g % 4))


def vector(text: str) -> list[float]:
    """A fixed random unit vector per text (no model download)."""
    seed_ = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed_).normal(size=384)
    return [float(x) for x in v / np.linalg.norm(v)]


class TextEmbedder:
    model_name = MODEL
    dimensions = 384

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        return [vector(t) for t in texts]


@pytest.fixture(scope="module")
def seeded(db_url: str) -> str:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        seed(conn, users=4, rows_per_table=800)
    return db_url


def _settings(min_rows: int) -> MemorySettings:
    # A shortlist of 40 out of 200 rows per type: which rows make it matters (a shortlist >= the rows is exact).
    # local_index_shortlist 0: the local index shortlists as many as SQL does, so both must agree row for row.
    # Uncalibrated: the same estimate as the SQL shortlist (the calibrated one has a test of its own).
    return MemorySettings(
        search_shortlist=40,
        search_candidates=20,
        local_index_min_rows=min_rows,
        local_index_shortlist=0,
        local_index_calibrate=False,
    )


@pytest.fixture
async def services(settings: Settings, seeded: str) -> AsyncIterator[tuple[MemoryService, MemoryService]]:
    """(with the local index for types of >= 100 rows, without it) on the same database."""
    db = Database(seeded, settings)
    await db.open()
    local = MemoryService(db, TextEmbedder(), _settings(100))  # type: ignore[arg-type]
    try:
        yield (local, MemoryService(db, TextEmbedder(), _settings(0)))  # type: ignore[arg-type]
    finally:
        await db.close()
    # Every search of these tests was answered by the held arrays: none ran against arrays another write had made
    # stale (a retry) and none ended on the SQL shortlist (a fallback), which would also return the right rows.
    assert local.local_index is not None
    assert (local.local_index.loads["retry"], local.local_index.loads["fallback"]) == (0, 0)


def _key(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(r["id"], r["score"]) for r in rows]


async def _warm(local: MemoryService, user: str) -> None:
    """The first search learns the user's sizes (SQL path), the second loads the arrays."""
    await local.search(user, "warm up", Filters(), 10)
    await local.search(user, "warm up", Filters(), 10)
    assert local.local_index is not None and local.local_index.nbytes > 0


async def test_the_local_index_returns_what_the_sql_shortlist_returns(
    services: tuple[MemoryService, MemoryService],
) -> None:
    local, today = services
    await _warm(local, USER)
    assert local.local_index is not None
    loads = local.local_index.loads["full"]
    assert loads == 5  # one per type: every type of the user is above the threshold
    for i in range(12):
        query = f"question {i}"
        mine, theirs = await local.search(USER, query, Filters(), 10), await today.search(USER, query, Filters(), 10)
        assert _key(mine) == _key(theirs) and len(mine) == 10
    assert local.local_index.loads["full"] == loads  # answered from the held arrays, nothing reloaded
    assert today.local_index is None


async def test_int8_vectors_hand_sql_fewer_rows_and_the_same_answer(settings: Settings, seeded: str) -> None:
    """With local_index_vectors the shortlist is scored again with int8 vectors and SQL re-ranks only the
    `search_candidates` best per type: the same rows and exact scores as the SQL path, the similarity floor kept."""
    db = Database(seeded, settings)
    await db.open()
    try:
        int8 = MemoryService(db, TextEmbedder(), _settings(100).model_copy(update={"local_index_vectors": True}))  # type: ignore[arg-type]
        today = MemoryService(db, TextEmbedder(), _settings(0))  # type: ignore[arg-type]
        await _warm(int8, USER)
        assert int8.local_index is not None and int8.local_index.nbytes > 5 * 200 * 388
        for i in range(12):
            query = f"question {i}"
            mine, theirs = await int8.search(USER, query, Filters(), 10), await today.search(USER, query, Filters(), 10)
            assert _key(mine) == _key(theirs) and len(mine) == 10
            floor = sorted(h["similarity"] for h in theirs)[7]  # only a few of the blend's best rows pass it
            mine = await int8.search(USER, query, Filters(), 10, min_similarity=floor)
            theirs = await today.search(USER, query, Filters(), 10, min_similarity=floor)
            assert _key(mine) == _key(theirs) and all(h["similarity"] >= floor for h in mine)
        assert (int8.local_index.loads["retry"], int8.local_index.loads["fallback"]) == (0, 0)
    finally:
        await db.close()


async def test_filtered_searches_match_the_sql_path(services: tuple[MemoryService, MemoryService]) -> None:
    local, today = services
    await _warm(local, USER)
    now = datetime.now(UTC)
    cases = [
        search_filters(["factual", "working"]),
        search_filters(None, since=now - timedelta(days=90)),
        search_filters(None, since=now - timedelta(days=200), until=now - timedelta(days=30)),
        search_filters(None, min_importance=0.7),  # left to SQL (importance may have risen since the load)
        search_filters(None, subject="user"),  # factual only, subject: SQL
        search_filters(None, category="cat3"),  # semantic only, category: SQL
    ]
    for filters in cases:
        for i in range(3):
            query = f"filtered {i}"
            mine = await local.search(USER, query, filters, 10, min_similarity=-1.0)
            theirs = await today.search(USER, query, filters, 10, min_similarity=-1.0)
            assert _key(mine) == _key(theirs), filters
            assert mine, filters
    # A minimum similarity is applied after the fetch, in SQL, for both.
    mine = await local.search(USER, "filtered 0", Filters(), 10, min_similarity=0.05)
    assert _key(mine) == _key(await today.search(USER, "filtered 0", Filters(), 10, min_similarity=0.05))


def _insert(db_url: str, table: str, user: str, text: str, **extra: Any) -> str:
    """A memory written by another connection (as another process or node would), embedded as `text`."""
    cols = {"factual_memories": "fact_type, subject, predicate, object_value", "working_memories": "context_type"}
    vals = {"factual_memories": "'note', 'user', 'p', 'v'", "working_memories": "'task'"}
    expires = extra.get("expires_at", datetime.now(UTC) + timedelta(days=1))
    created = extra.get("created_at", datetime.now(UTC))
    rows = sql(
        db_url,
        f"INSERT INTO {table} (user_id, content, {cols[table]}, importance_score, expires_at, created_at, embedding,"
        f" embedding_model) VALUES (%s, %s, {vals[table]}, 0.9, %s, %s, %s::vector(384), %s) RETURNING id::text",
        (user, text, expires, created, vector_literal(vector(text)), MODEL),
    )
    return str(rows[0]["id"])


async def test_a_row_another_connection_writes_is_found_and_a_deleted_one_never_comes_back(
    services: tuple[MemoryService, MemoryService], seeded: str
) -> None:
    local, _ = services
    await _warm(local, USER)
    assert local.local_index is not None
    query = "where did I park the blue bicycle"
    new_id = _insert(seeded, "factual_memories", USER, query)
    hits = await local.search(USER, query, Filters(), 10)
    assert hits[0]["id"] == new_id and hits[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert local.local_index.loads["append"] >= 1  # the held arrays were extended, not bypassed
    sql(seeded, "DELETE FROM factual_memories WHERE id = %s", (new_id,))
    for _ in range(3):
        assert new_id not in {h["id"] for h in await local.search(USER, query, Filters(), 10)}
    # An embedding changed in place (update_fact does this) moves the row in the shortlist at once.
    target = sql(seeded, "SELECT id::text FROM factual_memories WHERE user_id = %s LIMIT 1", (USER,))[0]["id"]
    sql(
        seeded,
        "UPDATE factual_memories SET embedding = %s::vector(384) WHERE id = %s",
        (vector_literal(vector(query)), target),
    )
    assert (await local.search(USER, query, Filters(), 10))[0]["id"] == target
    # A row whose created_at is older than every held one (a transaction that committed late, or an import): the
    # incremental read does not see it, the row count disagrees, and the type is loaded again in full.
    full = local.local_index.loads["full"]
    old_id = _insert(
        seeded, "working_memories", USER, "an old note", created_at=datetime.now(UTC) - timedelta(days=400)
    )
    assert (await local.search(USER, "an old note", Filters(), 10))[0]["id"] == old_id
    assert local.local_index.loads["full"] > full


async def test_expired_and_foreign_rows_never_appear(
    services: tuple[MemoryService, MemoryService], seeded: str
) -> None:
    local, today = services
    await _warm(local, USER)
    await _warm(local, OTHER)
    query = "the password of the garage door"
    expired = _insert(seeded, "working_memories", USER, query, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    foreign = _insert(seeded, "factual_memories", OTHER, query)
    mine = await local.search(USER, query, Filters(), 10)
    assert expired not in {h["id"] for h in mine} and foreign not in {h["id"] for h in mine}
    assert _key(mine) == _key(await today.search(USER, query, Filters(), 10))
    owned = {
        r["id"]
        for table in ("factual", "episodic", "semantic", "procedural", "working")
        for r in sql(seeded, f"SELECT id::text FROM {table}_memories WHERE user_id = %s", (USER,))
    }
    for i in range(5):
        assert {h["id"] for h in await local.search(USER, f"any {i}", Filters(), 10)} <= owned
    theirs = await local.search(OTHER, query, Filters(), 10)
    assert theirs[0]["id"] == foreign


async def test_forgetting_every_memory_of_a_type_empties_it_for_the_next_search(
    settings: Settings, db_url: str
) -> None:
    """A user whose facts are all deleted and written again (the counter row goes and comes back) sees only the
    new ones: counter values never repeat, so held arrays are never taken for current."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        seed(conn, users=1, rows_per_table=150, tables=("factual_memories",))
    db = Database(db_url, settings)
    await db.open()
    try:
        local = MemoryService(db, TextEmbedder(), _settings(100))  # type: ignore[arg-type]
        types = Filters(types=("factual",))
        await local.search("bench-0", "warm", types, 5)
        before = await local.search("bench-0", "warm", types, 5)
        assert len(before) == 5 and local.local_index is not None and local.local_index.nbytes > 0
        await local.forget("bench-0", "factual")
        assert await local.search("bench-0", "warm", types, 5) == []
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            seed(conn, users=1, rows_per_table=120, tables=("factual_memories",))
        again = await local.search("bench-0", "warm", types, 5)
        fresh = {r["id"] for r in sql(db_url, "SELECT id::text FROM factual_memories WHERE user_id = 'bench-0'")}
        assert len(again) == 5 and {h["id"] for h in again} <= fresh
        assert not {h["id"] for h in before} & fresh
    finally:
        await db.close()


async def test_the_calibrated_shortlist_finds_more_of_the_exact_top_10(settings: Settings, seeded: str) -> None:
    """Sign bits of near-orthogonal (here uniform random) vectors estimate the cosine with noise larger than the
    cosines' own spread, so ranking by the raw estimate lets the noise outvote importance and recency. The slope
    learnt from the re-ranked shortlists (exact cosine on estimate) shrinks the estimate to what it predicts."""
    db = Database(seeded, settings)
    await db.open()
    try:
        common = {"search_shortlist": 30, "search_candidates": 10}
        calibrated = MemoryService(db, TextEmbedder(), MemorySettings(**common, local_index_min_rows=100))  # type: ignore[arg-type]
        today = MemoryService(db, TextEmbedder(), MemorySettings(**common, local_index_min_rows=0))  # type: ignore[arg-type]
        exact = MemoryService(db, TextEmbedder(), MemorySettings(search_candidates=0))  # type: ignore[arg-type]
        user = "bench-3"
        for i in range(4):  # learns the sizes, loads the arrays, then learns the slopes
            await calibrated.search(user, f"warm {i}", Filters(), 10)
        index = calibrated.local_index
        assert index is not None
        slopes = [index.slope(user, t, MODEL) for t in ("factual", "episodic", "semantic", "procedural", "working")]
        assert all(0.15 < s < 0.85 for s in slopes), slopes
        found = {"calibrated": 0, "today": 0}
        for i in range(40):
            truth = {h["id"] for h in await exact.search(user, f"recall {i}", Filters(), 10)}
            for name, service in (("calibrated", calibrated), ("today", today)):
                hits = await service.search(user, f"recall {i}", Filters(), 10)
                found[name] += len(truth & {h["id"] for h in hits})
        assert found["calibrated"] > found["today"], found
        assert found["calibrated"] >= 0.95 * 400, found
    finally:
        await db.close()


async def test_concurrent_searches_of_a_user_load_its_arrays_once(
    services: tuple[MemoryService, MemoryService],
) -> None:
    import anyio

    local, today = services
    await local.search(USER, "sizes", Filters(), 10)  # learns the sizes; nothing loaded yet
    assert local.local_index is not None and local.local_index.loads["full"] == 0
    results: dict[int, list[tuple[str, float]]] = {}

    async def one(i: int) -> None:
        results[i] = _key(await local.search(USER, "same question", Filters(), 10))

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(one, i)
    assert local.local_index.loads["full"] == 5  # one load per type, shared by the four searches
    expected = _key(await today.search(USER, "same question", Filters(), 10))
    assert all(r == expected for r in results.values())


@pytest.mark.parametrize("vectors", [False, True])
async def test_the_memory_budget_and_the_reload_age_hold(settings: Settings, seeded: str, vectors: bool) -> None:
    """Arrays beyond local_index_max_bytes are dropped least recently used first (the types left out use the SQL
    shortlist), and arrays older than local_index_max_age_seconds are loaded again; results stay the SQL path's."""
    db = Database(seeded, settings)
    await db.open()
    try:
        common = {
            "search_shortlist": 40,
            "search_candidates": 20,
            "local_index_calibrate": False,
            "local_index_vectors": vectors,
        }
        # Two types of 200 rows at 384-d: ids 16, bits 48, three floats 24 (+ int8 vector 384, norm 4, updated_at 8).
        budget = 2 * 200 * (88 + (396 if vectors else 0)) + 100
        small = MemoryService(
            db,
            TextEmbedder(),  # type: ignore[arg-type]
            MemorySettings(**common, local_index_min_rows=100, local_index_max_bytes=budget),
        )
        aging = MemoryService(
            db,
            TextEmbedder(),  # type: ignore[arg-type]
            MemorySettings(**common, local_index_min_rows=100, local_index_max_age_seconds=1e-6),
        )
        today = MemoryService(db, TextEmbedder(), MemorySettings(**common, local_index_min_rows=0))  # type: ignore[arg-type]
        for i in range(4):
            expected = _key(await today.search(USER, f"budget {i}", Filters(), 10))
            assert _key(await small.search(USER, f"budget {i}", Filters(), 10)) == expected
            assert _key(await aging.search(USER, f"budget {i}", Filters(), 10)) == expected
        assert small.local_index is not None and 0 < small.local_index.nbytes <= budget
        assert (
            aging.local_index is not None and aging.local_index.loads["full"] == 3 * 5
        )  # every search after the first
    finally:
        await db.close()


async def test_a_reload_keeps_the_held_vectors_and_reads_the_changed_ones(
    settings: Settings, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full reload with int8 vectors held reads only the vectors of rows it does not hold with the same sign bits:
    after another connection gives 60 rows new embeddings, the int8 stage ranks with theirs, not the old ones."""
    db = Database(seeded, settings)
    await db.open()
    try:
        common = {"search_shortlist": 40, "search_candidates": 20, "local_index_calibrate": False}
        aging = MemoryService(  # every search after the first loads again (carrying what it holds)
            db,
            TextEmbedder(),  # type: ignore[arg-type]
            MemorySettings(**common, local_index_min_rows=100, local_index_max_age_seconds=1e-6),
        )
        today = MemoryService(db, TextEmbedder(), MemorySettings(**common, local_index_min_rows=0))  # type: ignore[arg-type]
        user, episodic = "bench-0", search_filters(["episodic"])
        for i in range(2):
            await aging.search(user, f"carry {i}", episodic, 10)
        asked: list[int] = []  # how many rows each reload reads the vectors of
        read = store.vectors_of

        async def counted(conn: Any, memory_type: str, user_id: str, ids: str) -> dict[str, Any] | None:
            asked.append(len(ids.strip("{}").split(",")))
            return await read(conn, memory_type, user_id, ids)

        monkeypatch.setattr(store, "vectors_of", counted)
        changed = sql(
            seeded,
            "UPDATE episodic_memories e SET embedding = ARRAY(SELECT random() - 0.5 + 0 * length(e.id::text)"
            " FROM generate_series(1, 384))::real[]::vector(384) WHERE e.id IN (SELECT id FROM episodic_memories"
            " WHERE user_id = %s ORDER BY id LIMIT 60) RETURNING e.id::text",
            (user,),
        )
        assert len(changed) == 60
        moved = 0
        for i in range(10):
            query = f"carry {i}"
            mine, theirs = await aging.search(user, query, episodic, 10), await today.search(user, query, episodic, 10)
            assert _key(mine) == _key(theirs)
            moved += len({h["id"] for h in theirs} & {r["id"] for r in changed})
        assert moved > 0  # the changed rows do reach the top 10, so their vectors were used
        assert asked and max(asked) <= 60  # each reload read the vectors of the changed rows, not all 200
        assert aging.local_index is not None and aging.local_index.nbytes > 200 * 388
    finally:
        await db.close()


async def test_int8_keeps_the_sql_answer_with_a_limit_of_candidates_and_a_floor_most_rows_meet(
    settings: Settings, seeded: str
) -> None:
    """The int8 stage sends SQL every row that may be among a type's `candidates` best above min_similarity: with
    the limit as large as the candidates and a floor near the bulk of the cosines, the rows are still the SQL
    path's (sending only the 20 best by int8 score would leave the 20th-21st swaps and floor-band rows out)."""
    db = Database(seeded, settings)
    await db.open()
    try:
        int8 = MemoryService(db, TextEmbedder(), _settings(100).model_copy(update={"local_index_vectors": True}))  # type: ignore[arg-type]
        today = MemoryService(db, TextEmbedder(), _settings(0))  # type: ignore[arg-type]
        episodic = search_filters(["episodic"])
        await _warm(int8, USER)
        for i in range(40):
            floor = (-1.0, 0.0, 0.01, 0.02, 0.03)[i % 5]
            mine = await int8.search(USER, f"bulk {i}", episodic, 20, min_similarity=floor)
            theirs = await today.search(USER, f"bulk {i}", episodic, 20, min_similarity=floor)
            assert _key(mine) == _key(theirs), (i, floor)
        assert int8.local_index is not None and int8.local_index.loads["fallback"] == 0
    finally:
        await db.close()


async def test_a_reinforced_or_re_embedded_row_counts_at_once(settings: Settings, seeded: str) -> None:
    """Raising a row's importance (store.reinforce, on a memory stored again) or changing its embedding without
    flipping a sign bit moves the type's generation (migration 0044), so the int8 stage never picks the rows SQL
    re-ranks with a stale importance or vector."""
    db = Database(seeded, settings)
    await db.open()
    try:
        wide = {"search_shortlist": 300}  # >= a type's 200 rows: every row is shortlisted, the int8 stage picks
        int8 = MemoryService(
            db, TextEmbedder(), _settings(100).model_copy(update={**wide, "local_index_vectors": True})
        )  # type: ignore[arg-type]
        today = MemoryService(db, TextEmbedder(), _settings(0).model_copy(update=wide))  # type: ignore[arg-type]
        user, episodic = OTHER, search_filters(["episodic"])
        await _warm(int8, user)
        exact = MemoryService(db, TextEmbedder(), MemorySettings(search_candidates=0))  # type: ignore[arg-type]
        ranked = await exact.search(user, "reinforce me", episodic, 100)
        low = [h for h in ranked[20:60] if h["importance_score"] < 0.3][:3]
        assert low
        async with db.connection() as conn:
            for h in low:
                await store.reinforce(conn, "episodic", user, h["id"], 1.0)
        mine, theirs = (
            await int8.search(user, "reinforce me", episodic, 10),
            await today.search(user, "reinforce me", episodic, 10),
        )
        assert _key(mine) == _key(theirs) and {h["id"] for h in low} & {h["id"] for h in mine}
        # The same signs with other magnitudes (aligned with the query where the signs agree): the bits stay.
        q = np.array(vector("target"))
        rows = sql(
            seeded,
            "SELECT id::text, embedding::text AS e FROM episodic_memories WHERE user_id = %s ORDER BY id LIMIT 5",
            (user,),
        )
        for r in rows:
            v = np.array([float(x) for x in r["e"][1:-1].split(",")])
            new = np.sign(v) * np.where(np.sign(v) == np.sign(q), np.abs(q), 1e-4)
            sql(
                seeded,
                "UPDATE episodic_memories SET embedding = %s::vector WHERE id = %s",
                (vector_literal(list(new)), r["id"]),
            )
        mine, theirs = await int8.search(user, "target", episodic, 10), await today.search(user, "target", episodic, 10)
        assert _key(mine) == _key(theirs) and {r["id"] for r in rows} & {h["id"] for h in mine}
    finally:
        await db.close()


async def test_a_type_too_large_for_one_vector_read_is_held_without_vectors(
    settings: Settings, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres cannot build a bytea over 1 GB, so a type whose packed vectors exceed _MAX_VECTOR_BYTES is held with
    sign bits only: same answer as SQL, and an insert is appended (not a full reload each time)."""
    monkeypatch.setattr(local_index, "_MAX_VECTOR_BYTES", 1000)  # smaller than any type here
    db = Database(seeded, settings)
    await db.open()
    try:
        int8 = MemoryService(db, TextEmbedder(), _settings(100).model_copy(update={"local_index_vectors": True}))  # type: ignore[arg-type]
        today = MemoryService(db, TextEmbedder(), _settings(0))  # type: ignore[arg-type]
        await _warm(int8, USER)
        index = int8.local_index
        assert index is not None and 0 < index.nbytes <= 5 * 200 * 88 + 5 * 100
        for i in range(4):
            assert _key(await int8.search(USER, f"big {i}", Filters(), 10)) == _key(
                await today.search(USER, f"big {i}", Filters(), 10)
            )
        full = index.loads["full"]
        new_id = _insert(seeded, "factual_memories", USER, "big type")
        try:
            hits = await int8.search(USER, "big type", Filters(), 10)
            assert new_id in {h["id"] for h in hits} and index.loads["full"] == full and index.loads["append"] >= 1
        finally:
            sql(seeded, "DELETE FROM factual_memories WHERE id = %s", (new_id,))
    finally:
        await db.close()


async def test_a_generation_committed_out_of_order_costs_one_refresh_not_a_retry_per_search(
    services: tuple[MemoryService, MemoryService], seeded: str
) -> None:
    # Writers take their counter value before they wait for the counter row, so a writer that waited can commit an
    # older value after a newer one: the counter then goes backwards while the arrays hold the newer one.
    local, today = services
    await _warm(local, USER)
    assert local.local_index is not None
    sql(seeded, "UPDATE memory_search_generations SET generation = generation - 1000 WHERE user_id = %s", (USER,))
    before = dict(local.local_index.loads)
    for i in range(4):
        query = f"after the late commit {i}"
        assert _key(await local.search(USER, query, Filters(), 10)) == _key(
            await today.search(USER, query, Filters(), 10)
        )
    assert local.local_index.loads["full"] == before["full"]  # one append per type (nothing new), then held
    assert local.local_index.loads["append"] == before["append"] + 5


@pytest.mark.parametrize("write", ["forget", "store_facts"])
async def test_memory_writers_take_the_user_and_type_lock_first(settings: Settings, db_url: str, write: str) -> None:
    """Every memory write transaction queues on (user, type) before touching a row: with 0042's counter row locked
    after a writer's first row but before the rows `forget` deletes, a writer reinforcing a row a concurrent forget
    held waited in a cycle, and Postgres failed one of them."""
    import anyio
    import psycopg

    from tests.support.procs import wait_for

    sql(
        db_url,
        "INSERT INTO users (user_id, email, name) VALUES ('locker', 'locker@example.test', 'l') ON CONFLICT DO NOTHING",
    )
    db = Database(db_url, settings)
    await db.open()
    service = MemoryService(db, TextEmbedder(), _settings(100))  # type: ignore[arg-type]
    done = anyio.Event()

    async def run() -> None:
        if write == "forget":
            await service.forget("locker", "factual")
        else:
            await service.store_facts("locker", "My favourite colour is teal.", 0.5)
        done.set()

    waiting = "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    try:
        with psycopg.connect(db_url) as holder:  # another writer of (locker, factual), mid-transaction
            holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", ("locker\x1ffactual",))
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await anyio.to_thread.run_sync(lambda: wait_for(lambda: sql(db_url, waiting)[0]["n"] > 0, 10))
                assert not done.is_set()  # queued on the (user, type) lock, holding no row yet
                holder.commit()
        assert done.is_set()
    finally:
        await db.close()

"""How search_memories reaches its rows: exactly through the per-user btree, or a shortlist by sign bits re-ranked
exactly (the default, migrations 0036 and 0040).

Without `Ann`/`Bits` (search_candidates = 0) every row of the caller is ranked exactly. With `Bits` each type
shortlists the user's rows by the blend with the cosine their sign bits estimate, read from the bits index alone,
and ranks the shortlist by the exact blend. `Ann` (search_shortlist = 0) asks for each type's nearest rows by
distance; since 0040 dropped the HNSW graphs it gets them exactly from the user's btree (latency and recall at
scale in tests/bench/bench_memory.py).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from isa.core.pgvector import ITERATIVE_SCAN_SQL
from isa.memory.store import Ann, Bits, Blend, Filters, search_params, search_sql
from tests.support.memory_seed import MODEL, seed


@pytest.fixture(scope="module")
def conn(db_url: str) -> Any:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        seed(c, users=50, rows_per_table=2500, tables=("factual_memories", "working_memories"))
        yield c


def _query() -> list[float]:
    v = np.random.default_rng(7).normal(size=384)
    return [float(x) for x in v / np.linalg.norm(v)]


def _plan(conn: Any, filters: Filters) -> str:
    stmt = search_sql(MODEL, 384, filters, Blend())
    params = search_params("bench-3", _query(), filters, 10, -1.0)
    rows = conn.execute(psycopg.sql.SQL("EXPLAIN (FORMAT JSON) ") + stmt, params).fetchall()
    return json.dumps(rows[0]["QUERY PLAN"])


def test_search_reads_only_the_callers_rows_through_the_user_btree(conn: Any) -> None:
    plan = _plan(conn, Filters(types=("factual", "working")))
    assert "factual_memories_user_" in plan and "working_memories_user_" in plan
    assert '"Node Type": "Seq Scan"' not in plan
    assert "embedding_minilm_idx" not in plan  # exact by design; see the module docstring


def test_the_search_ranks_every_row_of_the_user_exactly(conn: Any) -> None:
    filters = Filters(types=("factual",))
    cosine_only = Blend(similarity=1.0, importance=0.0, recency=0.0)
    got = conn.execute(
        search_sql(MODEL, 384, filters, cosine_only), search_params("bench-3", _query(), filters, 10, -1.0)
    )
    ids = [r["id"] for r in got.fetchall()]
    rows = conn.execute(
        "SELECT id::text, embedding::text AS v FROM factual_memories WHERE user_id = 'bench-3'"
    ).fetchall()
    matrix = np.array([json.loads(r["v"]) for r in rows])
    sims = matrix @ np.array(_query()) / np.linalg.norm(matrix, axis=1)
    expected = [rows[i]["id"] for i in np.argsort(-sims)[:10]]
    assert len(rows) == 50 and ids == expected


def test_no_hnsw_graph_is_left_on_the_full_vectors_of_memories_and_knowledge(conn: Any) -> None:
    """Migration 0040: writes no longer maintain graphs that the default search does not read."""
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE indexdef ILIKE '%%USING hnsw%%' AND tablename = ANY(%s)",
        (
            [
                "factual_memories",
                "episodic_memories",
                "semantic_memories",
                "procedural_memories",
                "working_memories",
                "user_knowledge",
            ],
        ),
    ).fetchall()
    assert rows == []


def test_with_the_hnsw_path_chosen_a_small_user_still_gets_every_row_exactly(conn: Any) -> None:
    """`search_shortlist = 0` (the Ann statement) after 0040: no graph to read, so the user's btree and a sort rank
    the user's rows exactly; a user with 5 facts among 2,500 of others gets all 5, nearest first."""
    filters, cosine_only = Filters(types=("factual",)), Blend(similarity=1.0, importance=0.0, recency=0.0)
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO users (user_id, email, name) VALUES ('tiny', 'tiny@example.test', 't') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO factual_memories (user_id, content, fact_type, subject, predicate, object_value,"
            " importance_score, embedding, embedding_model) SELECT 'tiny', 'fact ' || g, 'note', 'user', 'p', 'v',"
            " 0.5, (SELECT array_agg(random() - 0.5)::vector FROM generate_series(1, 384) d WHERE g > 0), %s"
            " FROM generate_series(1, 5) g",
            (MODEL,),
        )
        conn.execute(ITERATIVE_SCAN_SQL, ("10",))
        stmt = search_sql(MODEL, 384, filters, cosine_only, Ann(candidates=10, ef_search=10))
        rows = conn.execute(stmt, search_params("tiny", _query(), filters, 10, -1.0)).fetchall()
        assert [r["id"] for r in rows] == _exact_top(conn, "tiny", 5)


def _exact_top(conn: Any, user: str, n: int) -> list[str]:
    rows = conn.execute("SELECT id::text, embedding::text AS v FROM factual_memories WHERE user_id = %s", (user,))
    rows = rows.fetchall()
    matrix = np.array([json.loads(r["v"]) for r in rows])
    sims = matrix @ np.array(_query()) / np.linalg.norm(matrix, axis=1)
    return [rows[i]["id"] for i in np.argsort(-sims)[:n]]


def test_the_stored_bits_are_the_signs_of_the_embedding(conn: Any) -> None:
    row = conn.execute(
        "SELECT embedding::text AS v, embedding_bits::text AS b FROM factual_memories WHERE user_id = 'bench-3' LIMIT 1"
    ).fetchone()
    assert row["b"] == "".join("1" if x > 0 else "0" for x in json.loads(row["v"]))


def test_the_bits_shortlist_is_read_from_the_bits_index_alone(conn: Any) -> None:
    filters = Filters(types=("factual", "working"))
    conn.execute("VACUUM factual_memories, working_memories")  # the visibility map, as autovacuum keeps it
    stmt = search_sql(MODEL, 384, filters, Blend(), Bits(candidates=10, shortlist=20))
    plan = conn.execute(
        psycopg.sql.SQL("EXPLAIN (FORMAT JSON) ") + stmt, search_params("bench-3", _query(), filters, 10, -1.0)
    )
    text = json.dumps(plan.fetchall()[0]["QUERY PLAN"])
    assert text.count('"Node Type": "Index Only Scan"') == 2
    assert "factual_memories_user_bits_idx" in text and "working_memories_user_bits_idx" in text
    assert "embedding_minilm_idx" not in text and '"Node Type": "Seq Scan"' not in text


def test_with_a_shortlist_of_every_row_the_bits_path_is_the_exact_ranking(conn: Any) -> None:
    filters, cosine_only = Filters(types=("factual",)), Blend(similarity=1.0, importance=0.0, recency=0.0)
    stmt = search_sql(MODEL, 384, filters, cosine_only, Bits(candidates=50, shortlist=50))  # bench-3 has 50 facts
    rows = conn.execute(stmt, search_params("bench-3", _query(), filters, 10, -1.0)).fetchall()
    assert [r["id"] for r in rows] == _exact_top(conn, "bench-3", 10)


def test_a_short_shortlist_still_finds_the_nearest_rows_and_only_the_callers(conn: Any) -> None:
    """The shortlist is by Hamming distance, then exact: rows near the query have near bits. A user with a fact
    made almost equal to the query finds it first from a shortlist of 5 of their 50 facts."""
    filters, cosine_only = Filters(types=("factual",)), Blend(similarity=1.0, importance=0.0, recency=0.0)
    with conn.transaction(force_rollback=True):
        near = np.array(_query()) + np.random.default_rng(3).normal(size=384) * 0.01
        conn.execute(
            "UPDATE factual_memories SET embedding = %s::vector WHERE id = (SELECT id FROM factual_memories"
            " WHERE user_id = 'bench-3' ORDER BY id LIMIT 1)",
            (json.dumps([float(x) for x in near]),),
        )
        stmt = search_sql(MODEL, 384, filters, cosine_only, Bits(candidates=5, shortlist=5))
        rows = conn.execute(stmt, search_params("bench-3", _query(), filters, 10, -1.0)).fetchall()
        owners = conn.execute(
            "SELECT DISTINCT user_id FROM factual_memories WHERE id = ANY(%s::uuid[])", ([r["id"] for r in rows],)
        ).fetchall()
        assert len(rows) == 5 and rows[0]["id"] == _exact_top(conn, "bench-3", 1)[0]
        assert [o["user_id"] for o in owners] == ["bench-3"]


def test_the_shortlist_by_blend_keeps_an_important_row_that_hamming_distance_alone_drops(conn: Any) -> None:
    """A fact opposite to the query (every sign bit differs) but of full importance is the exact top hit when the
    blend weighs importance; a shortlist of 5 by Hamming distance never holds it, one by the estimated blend does."""
    filters, blend = Filters(types=("factual",)), Blend(similarity=0.2, importance=0.8, recency=0.0)
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE factual_memories SET importance_score = 0 WHERE user_id = 'bench-3'")
        far = conn.execute(
            "UPDATE factual_memories SET embedding = %s::vector, importance_score = 1 WHERE id = (SELECT id"
            " FROM factual_memories WHERE user_id = 'bench-3' ORDER BY id LIMIT 1) RETURNING id::text",
            (json.dumps([-x for x in _query()]),),
        ).fetchone()["id"]

        def top(ann: Bits | None) -> list[str]:
            stmt = search_sql(MODEL, 384, filters, blend, ann)
            return [r["id"] for r in conn.execute(stmt, search_params("bench-3", _query(), filters, 5, -1.0))]

        assert top(None)[0] == far
        assert top(Bits(candidates=5, shortlist=5))[0] == far
        assert far not in top(Bits(candidates=5, shortlist=5, by_blend=False))


def test_min_similarity_applies_before_each_types_candidates_are_cut(conn: Any) -> None:
    """Five important but unrelated facts must not crowd out the one fact above min_similarity."""
    filters, blend = Filters(types=("factual",)), Blend(similarity=0.2, importance=0.8, recency=0.0)
    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE factual_memories SET importance_score = 0.9 WHERE user_id = 'bench-3'")
        near = np.array(_query()) + np.random.default_rng(5).normal(size=384) * 0.001
        hit = conn.execute(
            "UPDATE factual_memories SET embedding = %s::vector, importance_score = 0 WHERE id = (SELECT id"
            " FROM factual_memories WHERE user_id = 'bench-3' ORDER BY id LIMIT 1) RETURNING id::text",
            (json.dumps([float(x) for x in near]),),
        ).fetchone()["id"]
        stmt = search_sql(MODEL, 384, filters, blend, Bits(candidates=5, shortlist=50))
        rows = conn.execute(stmt, search_params("bench-3", _query(), filters, 10, 0.9)).fetchall()
        assert [r["id"] for r in rows] == [hit]


def test_a_vector_whose_dimension_does_not_match_its_model_label_is_refused(conn: Any) -> None:
    """The guard the HNSW expressions gave before 0040 dropped them, now a CHECK constraint; the right dimension
    under the same label is stored."""
    statements = {
        "factual_memories": "INSERT INTO factual_memories (user_id, content, fact_type, subject, predicate,"
        " object_value, embedding, embedding_model) VALUES ('bench-3', 'x', 'n', 's', 'p', 'o', %s::vector, %s)",
        "user_knowledge": "INSERT INTO user_knowledge (user_id, content, embedding, embedding_model)"
        " VALUES ('bench-3', 'x', %s::vector, %s)",
    }
    for table, stmt in statements.items():
        with pytest.raises(psycopg.errors.CheckViolation, match=table), conn.transaction():
            conn.execute(stmt, (json.dumps([0.1] * 1536), MODEL))
        with conn.transaction(force_rollback=True):
            conn.execute(stmt, (json.dumps([0.1] * 384), MODEL))
